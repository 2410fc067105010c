"""Load benchmark for `lookalike serve`: many concurrent clients searching for a fixed time.

Starts `lookalike serve` on a free loopback port over an index (default: the demo index,
made with `lookalike demo`), then runs --clients concurrent clients for --seconds. Each client
loops: three searches by indexed id (stored vector, no model run) then one search by an
uploaded image (decoded and embedded by the model). Prints requests/s, p50/p99 latency and
errors per kind of search, the latency of /health probed meanwhile, and the machine's load
average. Exits 1 if any request failed.

    python benchmarks/web_load.py [--index DIR] [--clients 24] [--seconds 30] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from lookalike.config import cache_home
from lookalike.evaluate.edits import apply_edit


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def client_loop(
    client: httpx.AsyncClient,
    ids: list[int],
    uploads: list[bytes],
    deadline: float,
    tallies: dict[str, Tally],
    seed: int,
) -> None:
    rng = random.Random(seed)
    turn = 0
    while time.monotonic() < deadline:
        kind = "upload" if turn % 4 == 3 else "by-id"
        turn += 1
        started = time.perf_counter()
        try:
            if kind == "by-id":
                response = await client.get(f"/api/images/{rng.choice(ids)}/similar?k=20")
            else:
                data = rng.choice(uploads)
                response = await client.post(
                    "/api/search?k=20", files={"image": ("q.jpg", data, "image/jpeg")}
                )
            ok = response.status_code == 200 and bool(response.json()["results"])
            problem = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        tally = tallies[kind]
        if problem:
            tally.errors.append(problem)
        else:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def probe_health(client: httpx.AsyncClient, deadline: float, tally: Tally) -> None:
    """Twice a second, as a monitor would: /health must keep answering under the load."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = await client.get("/health")
            if response.status_code == 200:
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                tally.errors.append(f"health HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            tally.errors.append(f"health {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.5)


async def run_load(url: str, clients: int, seconds: float) -> dict[str, Tally]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        items = (await client.get("/api/images?limit=500")).json()["items"]
        ids = [item["id"] for item in items]
        uploads = []
        for item, edit in zip(items[:6], ["flip", "jpeg_15", "greyscale"] * 2, strict=False):
            original = Image.open(io.BytesIO((await client.get(item["original_url"])).content))
            buffer = io.BytesIO()
            apply_edit(edit, original.convert("RGB")).save(buffer, "JPEG", quality=85)
            uploads.append(buffer.getvalue())
        tallies = {"by-id": Tally(), "upload": Tally(), "health": Tally()}
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            probe_health(client, deadline, tallies["health"]),
            *(client_loop(client, ids, uploads, deadline, tallies, i) for i in range(clients)),
        )
    return tallies


def start_server(index: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "lookalike.present.cli", "serve", "--index", str(index)]
    process = subprocess.Popen([*command, "--port", "0"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    if "serving" not in line:
        process.wait()
        raise SystemExit(line + process.stderr.read())
    url = line.split(" at ", 1)[1].split()[0]
    while httpx.get(url + "health").json()["status"] == "loading":
        time.sleep(0.2)
    return process, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=cache_home() / "demo" / "index")
    parser.add_argument("--url", help="load a server already running here instead")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")
    process = None
    url = args.url
    if url is None:
        if not (args.index / "catalogue.sqlite").exists():
            parser.error(f"no index at {args.index}: run `lookalike demo` or give --index")
        process, url = start_server(args.index)
    try:
        started = time.monotonic()
        tallies = asyncio.run(run_load(url.rstrip("/") + "/", args.clients, args.seconds))
        elapsed = time.monotonic() - started
    finally:
        if process:
            process.terminate()
            process.wait(timeout=30)
    print(f"web load: {args.clients} clients for {elapsed:.1f} s against {url}")
    print(f"{'route':<8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    everything = Tally(  # the searches' latencies; every error, /health's included
        [ms for kind in ("by-id", "upload") for ms in tallies[kind].latencies_ms],
        [error for tally in tallies.values() for error in tally.errors],
    )
    for kind, tally in [*tallies.items(), ("all", everything)]:
        n = len(tally.latencies_ms)
        print(
            f"{kind:<8} {n:>9} {n / elapsed:>8.1f} {percentile(tally.latencies_ms, 0.5):>8.1f} "
            f"{percentile(tally.latencies_ms, 0.99):>8.1f} {len(tally.errors):>7}"
        )
    if everything.latencies_ms:
        print(f"mean latency {statistics.fmean(everything.latencies_ms):.1f} ms")
    for problem in sorted(set(everything.errors))[:10]:
        print(f"  error: {problem}")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if everything.errors else 0


if __name__ == "__main__":
    sys.exit(main())
