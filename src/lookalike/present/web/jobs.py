"""Adding paths to the index from the server: one background job at a time, with progress."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.embed.interface import Embedder
from lookalike.errors import IndexLockedError, LookalikeError
from lookalike.index import AddReport, Index


@dataclass
class Job:
    """One ``add`` run: its state is read by pollers while the worker thread updates it."""

    id: str
    paths: list[str]
    status: str = "running"  # running, done, failed
    done: int = 0
    total: int | None = None  # files to embed, known once the folders are walked
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: AddReport | None = None
    error: str | None = None


class JobRunner:
    """Runs ``Index.add`` in a thread with its own Index (own database connection and lock).

    ``embedder`` gives the model already loaded for searching, so a job does not load a
    second copy; it blocks until the model is ready.
    """

    def __init__(self, index_dir: Path, embedder: Callable[[], Embedder]) -> None:
        self.index_dir = index_dir
        self._embedder = embedder
        self._jobs: dict[str, Job] = {}
        self._mutex = threading.Lock()

    def start(self, paths: list[str]) -> Job:
        """Check the paths and the lock, then start; raises IndexLockedError when busy."""
        if not paths:
            raise LookalikeError("give at least one path to add")
        for path in paths:
            if not os.path.isabs(path):
                raise LookalikeError(
                    f"paths must be absolute (the server's folder is not yours): {path}"
                )
            if not os.path.exists(path):
                raise LookalikeError(f"no such file or folder: {path}")
        with self._mutex:
            running = [j for j in self._jobs.values() if j.status == "running"]
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
            job = Job(uuid.uuid4().hex[:12], [os.path.normpath(p) for p in paths])
            self._jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, writer, held), name=f"add-{job.id}", daemon=True
        ).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _run(self, job: Job, writer: Index, held: ExitStack) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            with held:
                job.report = writer.add(job.paths, progress=progress)
            job.status = "done"
        except LookalikeError as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # a thread has no caller to raise to: the poller reads it
            job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished_at = time.time()
