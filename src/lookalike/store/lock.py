"""One writer per index: an advisory lock the kernel releases even when the holder is killed."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from lookalike.errors import IndexLockedError


class WriterLock:
    """Exclusive, non-blocking ``flock`` on ``DIR/write.lock``, holding the owner's PID."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "write.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexLockedError(
                f"index {self.path.parent} is locked by PID {holder} (another writer is running)"
            ) from None
        try:  # the PID only names the holder in the message above: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
