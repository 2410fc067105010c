"""Where the mapping stage runs. ``LocalRunner``: threads in this process, the default.

Decoding runs ahead in a thread pool while the model embeds the previous batch; the number of
files in flight is bounded, so memory does not grow with the size of the folder.

Threads, not processes: Pillow's JPEG decoder and resizer release the GIL, and so does ONNX
Runtime, so threads use every core as processes would. A spawned process, though, re-imports
the parent's main module (the CLI, hence PyTorch): measured here, seconds of start-up and
about 600 MB per worker, which cost a 64-photo job more than half its speed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

from lookalike.config import EXECUTORS
from lookalike.errors import LookalikeError
from lookalike.files.walk import FileEntry
from lookalike.pipeline.mapper import Decoded, EmbeddedFile, Mapper

# Below this many files decoding ahead has nothing to overlap with.
MIN_FILES_FOR_WORKERS = 8
MAX_WORKERS = 4


class Runner(Protocol):
    """Runs a mapper over file entries and yields its results in batches, in input order."""

    def map(
        self, entries: Sequence[FileEntry], mapper: Mapper, batch_size: int
    ) -> Iterator[list[EmbeddedFile]]: ...


@contextmanager
def open_runner(
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    actors: int | None = None,
) -> Iterator[Runner]:
    """The runner an executor names, for the time of a ``with`` block: "local" (threads
    here, ``workers`` decode threads), or "ray" (``actors`` Ray actors on the cluster at
    ``address``, else on a Ray started for the block and stopped after it). Only "ray"
    imports Ray."""
    if executor == "local":
        yield LocalRunner(workers)
        return
    if executor != "ray":
        raise LookalikeError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    from lookalike.pipeline.ray_runner import RayRunner

    with RayRunner(address, actors) as runner:
        yield runner


def default_workers(n_files: int) -> int:
    """Decode threads: one per core. Inference threads (as many) sleep rather than spin when
    idle, so the two stages share the cores instead of fighting over them: on 2 cores, 2
    decode threads gave 0.69 of model-only speed end to end, 1 thread 0.49."""
    if n_files < MIN_FILES_FOR_WORKERS:
        return 0
    return min(MAX_WORKERS, len(os.sched_getaffinity(0)))


class LocalRunner:
    """Decode in ``workers`` threads (None: by cores and files; 0: in this thread, between
    batches) and embed batch after batch in this process."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def map(
        self, entries: Sequence[FileEntry], mapper: Mapper, batch_size: int
    ) -> Iterator[list[EmbeddedFile]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        workers = default_workers(len(entries)) if self.workers is None else self.workers
        if entries:
            mapper.prepare()
        batch: list[tuple[FileEntry, Decoded]] = []
        for item in _decode_ahead(entries, mapper, workers, ahead=4 * batch_size):
            batch.append(item)
            if len(batch) == batch_size:
                yield mapper.embed(batch)
                batch = []
        if batch:
            yield mapper.embed(batch)


def _decode_ahead(
    entries: Sequence[FileEntry], mapper: Mapper, workers: int, ahead: int
) -> Iterator[tuple[FileEntry, Decoded]]:
    if workers <= 0:
        for entry in entries:
            yield entry, mapper.decode(entry)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending: deque[tuple[FileEntry, Future[Decoded]]] = deque()
        for entry in entries:
            pending.append((entry, pool.submit(mapper.decode, entry)))
            if len(pending) >= ahead:
                done_entry, future = pending.popleft()
                yield done_entry, future.result()
        while pending:
            done_entry, future = pending.popleft()
            yield done_entry, future.result()
