"""Adding paths to the index from the server: one background job at a time, with progress,
only under the folders the operator allowed, and cancellable."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.embed.interface import Embedder
from lookalike.errors import IndexLockedError, LookalikeError
from lookalike.files.walk import is_under
from lookalike.index import AddReport, Index

SHOWN_ROOTS = 5  # an error names at most this many allowed folders


class PathNotAllowedError(LookalikeError):
    """A job asked for a path outside the folders the server may add to (a 403)."""


class JobFinishedError(LookalikeError):
    """A finished job cannot be cancelled (a 409)."""


class _Cancelled(Exception):
    """Raised inside the job's thread at a batch boundary once cancelling was asked for."""


@dataclass
class Job:
    """One ``add`` run: its state is read by pollers while the worker thread updates it."""

    id: str
    paths: list[str]
    state: str = "running"  # running, done, failed, cancelled: written by the job's thread only
    done: int = 0
    total: int | None = None  # files to embed, known once the folders are walked
    # what done / total count: "walking" (nothing yet), "embedding", "classifying",
    # "adapting" (Index.add's phases); None once finished
    phase: str | None = "walking"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: AddReport | None = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> str:
        """``state``, or "cancelling" while a running job has been asked to stop."""
        return "cancelling" if self.state == "running" and self.stop.is_set() else self.state

    def check_stop(self) -> None:
        """Raise :class:`_Cancelled` if cancelling was asked for: called between folders while
        walking and between batches while embedding."""
        if self.stop.is_set():
            raise _Cancelled


def covering_folders(folders: Iterable[str]) -> list[str]:
    """The fewest folders that hold all of ``folders`` (each, or one of its parents).

    Sorted, a folder comes right after its ancestors (a prefix sorts first), so one pass
    keeps each folder that no kept one contains."""
    kept: list[str] = []
    for folder in sorted(set(folders)):
        if not is_under(folder, kept):
            kept.append(folder)
    return kept


class JobRunner:
    """Runs ``Index.add`` in a thread with its own Index (own database connection and lock).

    ``embedder`` gives the model already loaded for searching, so a job does not load a
    second copy; it blocks until the model is ready.
    """

    def __init__(self, index_dir: str | Path, embedder: Callable[[], Embedder]) -> None:
        self.index_dir = index_dir
        self._embedder = embedder
        self._jobs: dict[str, Job] = {}
        self._mutex = threading.Lock()

    def start(self, paths: list[str], roots: list[str]) -> Job:
        """Check the paths and the lock, then start; raises IndexLockedError when busy and
        PathNotAllowedError for a path outside ``roots`` (absolute, normalised folders)."""
        if not paths:
            raise LookalikeError("give at least one path to add")
        for path in paths:
            if not os.path.isabs(path):
                raise LookalikeError(
                    f"paths must be absolute (the server's folder is not yours): {path}"
                )
        wanted = [os.path.normpath(p) for p in paths]  # "/photos/../etc" is "/etc"
        for path in wanted:
            # Checked before existence, so that the answer tells nothing about other folders.
            if not is_under(path, roots):
                shown = ", ".join(roots[:SHOWN_ROOTS]) + (
                    " ..." if len(roots) > SHOWN_ROOTS else ""
                )
                raise PathNotAllowedError(
                    f"{path} is outside the folders this server may add to "
                    f"({shown or 'none'}); its operator can allow more with --allow-root DIR"
                )
            if not os.path.exists(path):
                raise LookalikeError(f"no such file or folder: {path}")
        with self._mutex:
            running = [j for j in self._jobs.values() if j.state == "running"]
            if running:
                raise IndexLockedError(f"add job {running[0].id} is still running")
            # The lock is taken here, so another writer is a 409 now; the job's thread
            # releases it when done.
            held = ExitStack()
            writer = held.enter_context(Index.open(self.index_dir, embedder=self._embedder))
            try:
                held.enter_context(writer.writing())
            except BaseException:
                held.close()
                raise
            job = Job(uuid.uuid4().hex[:12], wanted)
            self._jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, writer, held), name=f"add-{job.id}", daemon=True
        ).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Ask a running job to stop at its next batch boundary (what it committed stays);
        None for an unknown id, JobFinishedError for a job that already finished."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if job.state not in ("running", "cancelled"):
            raise JobFinishedError(f"job {job_id} has already finished ({job.state})")
        job.stop.set()
        return job

    def _run(self, job: Job, writer: Index, held: ExitStack) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            job.check_stop()

        def on_phase(name: str) -> None:
            job.phase, job.done, job.total = name, 0, None

        try:
            with held:  # closing it releases the writer lock, before the state says so
                job.report = writer.add(
                    job.paths,
                    progress=progress,
                    on_folder=lambda _: job.check_stop(),
                    on_phase=on_phase,
                )
            job.state = "done"
        except _Cancelled:
            job.state = "cancelled"
        except LookalikeError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a thread has no caller to raise to: the poller reads it
            job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.phase, job.finished_at = None, time.time()
