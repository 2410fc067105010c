"""A real Milvus server for the Milvus store's tests, in a network namespace of its own.

The standalone server (PyPI's ``milvus``) listens on every interface, so it runs inside a
namespace that has only loopback, and every client of it (the real CLI, or Python code of the
test) runs inside that namespace too, through ``ip netns exec``: nothing it opens is reachable
from the machine's network. One server serves the session; each test uses its own collection.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PORT = 19530
START_TIMEOUT_S = 240

# Ticks of 20 ms instead of 200 (proxy) and checks every 100 ms instead of 1 s (query
# coordinator): a Strong read waits for the next tick, a load for the next check. Sessions of
# 5 s instead of 30: a server started again after a kill waits for its old ones to expire.
FAST = {
    "proxy.timeTickInterval": 20,
    "common.session.ttl": 5,
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 50,
}
# The package probes each port by binding it without SO_REUSEADDR, which a restart right after
# a kill fails (the old connections linger in TIME_WAIT); Milvus itself binds with it.
SERVE = """
import json, socket, sys
from milvus import MilvusServer, MilvusServerConfig

def try_bind_port(self, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None

MilvusServerConfig.try_bind_port = try_bind_port
server = MilvusServer()
server.set_base_dir(sys.argv[1])
server.listen_port = int(sys.argv[2])
for key, value in json.loads(sys.argv[3]).items():
    server.config.set(key, value)
server.start()
print("ready", server.listen_port, flush=True)
server.wait()
"""


@dataclass
class MilvusServer:
    """The session's server: where it keeps its data, and how to run a client beside it."""

    namespace: str
    data: Path
    settings: dict[str, int] = field(default_factory=lambda: dict(FAST))  # of milvus.yaml
    started_s: list[float] = field(default_factory=list)  # each start's wall time
    process: subprocess.Popen[str] | None = None

    def url(self, collection: str, settings: str = "") -> str:
        return f"milvus://127.0.0.1:{PORT}/{collection}" + (f"?{settings}" if settings else "")

    def start(self) -> None:
        began = time.monotonic()
        self.process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.namespace,
                sys.executable,
                "-c",
                SERVE,
                str(self.data),
                str(PORT),
                json.dumps(self.settings),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group: stop() ends the server with it
        )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as wait:
            wait.register(self.process.stdout, selectors.EVENT_READ)
            said = self.process.stdout.readline() if wait.select(START_TIMEOUT_S) else "nothing"
        if said != f"ready {PORT}\n":
            self.stop()
            raise RuntimeError(f"Milvus did not start: {said!r} (logs: {self.data}/logs)")
        self.started_s.append(time.monotonic() - began)

    def stop(self) -> None:
        """End the server and its wrapper (their process group), as a crash would: SIGKILL;
        returns once every process of the group is gone and so its ports are free."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.process = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def run(
        self, *argv: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the namespace (a client of the server)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.client_environment(),
        )

    def client_environment(self) -> dict[str, str]:
        """This environment without the user's config file or index (as run_cli has it)."""
        env = dict(os.environ, LOOKALIKE_CONFIG=str(self.data / "no-config.toml"))
        env.pop("LOOKALIKE_INDEX", None)
        return env

    def python(self, code: str, *args: str) -> object:
        """Run ``code`` in the namespace; what it prints last, as JSON, is the answer."""
        done = self.run(sys.executable, "-c", code, *args)
        if done.returncode != 0:
            raise AssertionError(f"client code failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def namespace_problem(name: str) -> str | None:
    """Why a network namespace cannot be made here (None: it was made)."""
    try:
        made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    except FileNotFoundError:
        return "the 'ip' command (iproute2) is missing"
    if made.returncode != 0:
        return f"'ip netns add' failed (needs root): {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    return None
