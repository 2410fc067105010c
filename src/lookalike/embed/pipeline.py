"""Files -> decoded images -> vectors, with decoding in threads overlapped with inference.

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
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lookalike.decode.image import DecodedImage, decode_image
from lookalike.errors import ImageError
from lookalike.files.walk import FileEntry

if TYPE_CHECKING:  # PyTorch is imported only when a model is built
    from lookalike.embed.interface import Embedder

# Below this many files decoding ahead has nothing to overlap with.
MIN_FILES_FOR_WORKERS = 8
MAX_WORKERS = 4


@dataclass(frozen=True)
class EmbeddedFile:
    """The outcome for one file: a vector, or the reason it was skipped."""

    entry: FileEntry
    decoded: DecodedImage | None
    vector: np.ndarray | None
    reason: str | None


def decode_or_reason(path: str, max_side: int) -> DecodedImage | str:
    """Worker job: the decoded image, or a one-line reason it cannot be used."""
    try:
        return decode_image(path, max_side=max_side)
    except ImageError as exc:
        return str(exc)


def default_workers(n_files: int) -> int:
    """Decode threads: one per core. Inference threads (as many) sleep rather than spin when
    idle, so the two stages share the cores instead of fighting over them: on 2 cores, 2
    decode threads gave 0.69 of model-only speed end to end, 1 thread 0.49."""
    if n_files < MIN_FILES_FOR_WORKERS:
        return 0
    return min(MAX_WORKERS, len(os.sched_getaffinity(0)))


def embed_files(
    entries: Iterable[FileEntry],
    embedder: Embedder,
    batch_size: int = 32,
    workers: int = 0,
) -> Iterator[list[EmbeddedFile]]:
    """Yield results in batches of up to ``batch_size`` files, in input order.

    ``workers`` decode threads (0: decode in this thread, between batches).
    """
    decoded = _decode_all(entries, embedder.image_size, workers, ahead=4 * batch_size)
    batch: list[tuple[FileEntry, DecodedImage | str]] = []
    for item in decoded:
        batch.append(item)
        if len(batch) == batch_size:
            yield _embed_batch(batch, embedder)
            batch = []
    if batch:
        yield _embed_batch(batch, embedder)


def _decode_all(
    entries: Iterable[FileEntry], max_side: int, workers: int, ahead: int
) -> Iterator[tuple[FileEntry, DecodedImage | str]]:
    if workers <= 0:
        for entry in entries:
            yield entry, decode_or_reason(entry.path, max_side)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending: deque[tuple[FileEntry, Future[DecodedImage | str]]] = deque()
        for entry in entries:
            pending.append((entry, pool.submit(decode_or_reason, entry.path, max_side)))
            if len(pending) >= ahead:
                done_entry, future = pending.popleft()
                yield done_entry, future.result()
        while pending:
            done_entry, future = pending.popleft()
            yield done_entry, future.result()


def _embed_batch(
    batch: list[tuple[FileEntry, DecodedImage | str]], embedder: Embedder
) -> list[EmbeddedFile]:
    good = [d for _, d in batch if isinstance(d, DecodedImage)]
    vectors = iter(embedder.embed([d.image for d in good]))
    return [
        EmbeddedFile(entry, d, next(vectors), None)
        if isinstance(d, DecodedImage)
        else EmbeddedFile(entry, None, None, d)
        for entry, d in batch
    ]
