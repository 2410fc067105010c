"""Progress on the terminal, shared by every command that runs long."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lookalike.index import Progress


class progress_bar:
    """A tqdm bar (count, rate, ETA) on a terminal; nothing when quiet or not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar: object | None = None

    def __enter__(self) -> Progress | None:
        if not self.enabled:
            return None
        from tqdm import tqdm

        bar = tqdm(total=0, unit="img", file=sys.stderr, dynamic_ncols=True)
        self.bar = bar

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        return update

    def phase(self, name: str) -> None:
        """Start counting a new phase of the run (``Index.add``'s ``on_phase``): the bar is
        labelled with it, and its count, rate and ETA start again."""
        bar: Any = self.bar
        if bar is not None:
            bar.reset()
            bar.set_description(name)

    def __exit__(self, *exc: object) -> None:
        close: Callable[[], None] | None = getattr(self.bar, "close", None)
        if close:
            close()
