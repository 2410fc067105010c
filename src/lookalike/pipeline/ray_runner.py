"""``RayRunner``: the mapping stage on a Ray cluster, or on a Ray started here for the run.

The plan and commit stages stay in this process; only the unit of work travels. Ray Data
splits the planned files into batches, and a fixed pool of actors, each building its own
model from the mapper's :class:`~lookalike.pipeline.mapper.EmbedderSpec`, decodes and embeds
them (``Mapper.__call__``). Files are read where the actor runs: on a cluster every node must
see the same paths (and the model's weights file, if one is given).

What comes back per file is the pickled :class:`EmbeddedFile` (vector, metadata, reason,
classes, local features), so the commit stage cannot tell this runner from the local one. A
:class:`LookalikeError` raised in an actor (a model that cannot be built, or makes other
vectors than the index's) comes back as data and is raised here as itself; anything else Ray
raises becomes one :class:`ExecutorError` line.

Ray is imported only when a runner starts: the local executor never loads it.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from lookalike.config import debug_from_environment
from lookalike.errors import ExecutorError, LookalikeError
from lookalike.files.walk import FileEntry
from lookalike.pipeline.mapper import EmbeddedFile, EmbedderSpec, Mapper

# A local Ray's shared-memory object store. Results are small (a 1280-d vector is 5 KB, local
# features 20 KB, a batch of 32 under 1 MB) and Ray's default takes 30 % of the machine's
# memory, which on a shared 24 GiB machine is memory taken from the other jobs.
OBJECT_STORE_BYTES = 256 * 2**20
# The environment that changes which model an actor builds: shipped to every actor, so that a
# node of a cluster builds what this process would.
MODEL_ENVIRONMENT = ("LOOKALIKE_WEIGHTS", "LOOKALIKE_RUNTIME")
CONNECT_TIMEOUT_S = 5.0


class RayRunner:
    """Embed in ``actors`` Ray actors (None: one per ``cpus_per_actor`` CPUs of the cluster),
    each holding one model, on the cluster at ``address`` ("HOST:PORT", or "auto" for the
    one ``ray start`` left on this machine), else on a Ray started here with this machine's
    cores and stopped by :meth:`close`.

    Ray starts with the first :meth:`map` (a run with nothing to embed never starts it);
    ``startup_s`` is what connecting or starting took, in seconds (None until then). Use it
    as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, address: str | None = None, actors: int | None = None, cpus_per_actor: float = 1.0
    ) -> None:
        if actors is not None and actors < 1:
            raise LookalikeError(f"actors must be at least 1, got {actors}")
        if cpus_per_actor <= 0:
            raise LookalikeError(f"CPUs per actor must be positive, got {cpus_per_actor}")
        self.address = address or None
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.startup_s: float | None = None
        self._ray = _import_ray()  # now, so that a missing Ray is said before any work
        self._started = False
        self._owned = False  # whether close() ends the Ray session (we called ray.init)

    def start(self) -> None:
        """Connect to the cluster, or start a local Ray; a session already open in this
        process (a notebook's, a test's) is used as it is and left open."""
        if self._started:
            return
        ray = self._ray
        began = time.perf_counter()
        if not ray.is_initialized():
            _quiet_ray(ray)
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": debug_from_environment(),
                "logging_level": logging.WARNING if debug_from_environment() else logging.ERROR,
            }
            if self.address:
                _check_reachable(self.address)
                options["address"] = self.address
            else:
                options["num_cpus"] = len(os.sched_getaffinity(0))
                options["object_store_memory"] = OBJECT_STORE_BYTES
            try:
                ray.init(**options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ExecutorError(f"cannot start Ray: {_one_line(exc)}") from exc
            self._owned = True
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray.data.DataContext.get_current().print_on_execution_start = False
        self.startup_s = time.perf_counter() - began
        self._started = True

    def close(self) -> None:
        """End the Ray session if :meth:`start` began it (a local Ray's processes stop with
        it; a cluster's go on)."""
        if self._owned:
            self._ray.shutdown()
        self._started = self._owned = False

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def pool_size(self) -> int:
        """The number of actors a run uses: as asked, else as many as the cluster's CPUs
        hold (on this 2-core machine: 2)."""
        if self.actors is not None:
            return self.actors
        self.start()
        cpus = float(self._ray.cluster_resources().get("CPU", 1))
        return max(1, int(cpus // self.cpus_per_actor))

    def map(
        self, entries: Sequence[FileEntry], mapper: Mapper, batch_size: int
    ) -> Iterator[list[EmbeddedFile]]:
        """Batches of ``batch_size`` results, in the order of ``entries``; Ray runs batches
        of the same size, several at once, and this puts what comes back in order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not entries:
            return
        self.start()
        ray = self._ray
        rows = [
            # paths as bytes: a file name that is not UTF-8 is no Arrow string
            {"seq": i, "path": os.fsencode(e.path), "size": e.size, "mtime_ns": e.mtime_ns}
            for i, e in enumerate(entries)
        ]
        env = {name: os.environ[name] for name in MODEL_ENVIRONMENT if os.environ.get(name)}
        # On a cluster Ray Data restarts an actor whose node was lost (and its core logs a
        # line saying so at every actor's creation); on a Ray of our own no node can be lost,
        # so actors are not restarted and that line is not written. Ray 2.60 takes the
        # setting only as a deprecated keyword, hence the warning filter.
        restarts = {"max_restarts": 0} if self._owned and not self.address else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            mapped = ray.data.from_items(rows).map_batches(
                EmbedActor,
                fn_constructor_args=(mapper.spec,),
                compute=ray.data.ActorPoolStrategy(size=self.pool_size()),
                batch_size=batch_size,
                num_cpus=self.cpus_per_actor,
                batch_format="numpy",
                udf_modifying_row_count=False,
                runtime_env={"env_vars": env} if env else None,
                **restarts,
            )
        try:
            yield from _in_order(mapped.iter_batches(batch_size=None), batch_size)
        except ray.exceptions.RayError as exc:
            raise ExecutorError(f"Ray failed: {_one_line(exc)}") from exc


class EmbedActor:
    """One Ray actor: a mapper whose model is built with the first batch (so that a model
    that cannot be built is a ``LookalikeError`` sent back, not an actor that died)."""

    def __init__(self, spec: EmbedderSpec) -> None:
        self.mapper = Mapper(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Columns seq, path (bytes), size, mtime_ns -> seq, result: each file's pickled
        ``EmbeddedFile``, or for every file the ``LookalikeError`` that stopped the batch."""
        entries = [
            FileEntry(os.fsdecode(path), int(size), int(mtime))
            for path, size, mtime in zip(
                batch["path"], batch["size"], batch["mtime_ns"], strict=True
            )
        ]
        try:
            results: list[object] = list(self.mapper(entries))
        except LookalikeError as exc:
            results = [exc] * len(entries)
        payload = np.empty(len(results), dtype=object)
        payload[:] = [pickle.dumps(r) for r in results]
        return {"seq": batch["seq"], "result": payload}


def _in_order(batches: Iterator[dict[str, np.ndarray]], size: int) -> Iterator[list[EmbeddedFile]]:
    """Re-assemble results by sequence number into batches of ``size``: Ray's actors
    finish batches in any order. Only results ahead of the first missing one are held."""
    waiting: dict[int, EmbeddedFile] = {}
    ready: list[EmbeddedFile] = []
    expected = 0
    for batch in batches:
        for seq, payload in zip(batch["seq"], batch["result"], strict=True):
            item = pickle.loads(payload)
            if isinstance(item, LookalikeError):
                raise item
            waiting[int(seq)] = item
        while expected in waiting:
            ready.append(waiting.pop(expected))
            expected += 1
            if len(ready) == size:
                yield ready
                ready = []
    if waiting:
        raise ExecutorError(f"Ray lost the results of files {expected} onwards")
    if ready:
        yield ready


def _import_ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ExecutorError(
            "--executor ray needs Ray: pip install 'lookalike[ray]' (ray[data])"
        ) from exc
    module: ModuleType = ray
    return module


def _quiet_ray(ray: ModuleType) -> None:
    """Ray talks on stderr (its C++ core, Ray Data's progress and execution plans); a user of
    lookalike sees lookalike's own lines, and LOOKALIKE_DEBUG=1 lets Ray speak again. Set
    before ``ray.init``, so the processes it starts inherit it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing is sent anywhere
    if debug_from_environment():
        return
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):  # the console; its log file stays
            handler.setLevel(logging.CRITICAL)


def _check_reachable(address: str) -> None:
    """A HOST:PORT where nothing listens would keep ``ray.init`` retrying for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", or an address form Ray itself checks
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {reason}") from exc


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHAINED = re.compile(
    r"\n\s*(?:The above exception was the direct cause of the following exception:"
    r"|During handling of the above exception, another exception occurred:)\s*\n"
)


def _one_line(exc: BaseException) -> str:
    """The line that says what went wrong: Ray's messages carry the remote traceback, first
    the exception that started it (the last line of its part), then Ray Data's wrappers."""
    root = _CHAINED.split(_ANSI.sub("", str(exc)))[0]
    lines = [line.strip() for line in root.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
