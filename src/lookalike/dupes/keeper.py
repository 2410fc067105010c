"""Which copy of a group to keep: the one a photographer would keep.

Rules in order, the first that tells two copies apart decides: a copy under a preferred
folder (``--prefer-folder``, in the order given), a preferred format (``--prefer-format``,
e.g. raw or HEIC before JPEG), the largest resolution, the largest file, the earliest
capture time (a copy with no EXIF time comes after one with it), then the path (so that the
choice is the same every time).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from lookalike.files.walk import is_under
from lookalike.store.record import ImageRecord

# Formats as Pillow names them, with the common names people give them.
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff", "heif": "heic"}
RAW_FORMATS = {"dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "raw"}


@dataclass(frozen=True)
class KeeperRules:
    """What the user prefers to keep; folders are absolute, formats lower-case."""

    folders: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()

    @classmethod
    def of(cls, folders: Sequence[str] = (), formats: Sequence[str] = ()) -> KeeperRules:
        return cls(
            tuple(os.path.abspath(os.path.expanduser(f)) for f in folders),
            tuple(_format_name(f) for f in formats),
        )

    def _folder_rank(self, record: ImageRecord) -> int:
        return next(
            (i for i, f in enumerate(self.folders) if is_under(record.path, [f])),
            len(self.folders),
        )

    def _format_rank(self, record: ImageRecord) -> int:
        name = _format_name(record.format or os.path.splitext(record.path)[1].lstrip("."))
        for i, wanted in enumerate(self.formats):
            if name == wanted or (wanted == "raw" and name in RAW_FORMATS):
                return i
        return len(self.formats)


def _format_name(name: str) -> str:
    lower = name.lower().lstrip(".")
    return FORMAT_ALIASES.get(lower, lower)


def _pixels(record: ImageRecord) -> int:
    return (record.width or 0) * (record.height or 0)


def choose_keeper(records: Sequence[ImageRecord], rules: KeeperRules) -> tuple[ImageRecord, str]:
    """(the copy to keep, why: the first rule that set it apart from the runner-up)."""
    criteria = (
        ("in a preferred folder", lambda r: rules._folder_rank(r)),
        ("preferred format", lambda r: rules._format_rank(r)),
        ("largest resolution", lambda r: -_pixels(r)),
        ("largest file", lambda r: -r.size),
        ("earliest capture time", lambda r: (r.taken_at is None, r.taken_at or "")),
    )

    def key(record: ImageRecord) -> tuple[object, ...]:
        return (*(rule(record) for _, rule in criteria), record.path)

    ranked = sorted(records, key=key)
    keeper, runner_up = ranked[0], ranked[1]
    for reason, rule in criteria:
        if rule(keeper) != rule(runner_up):
            return keeper, reason
    return keeper, "first by path (the copies are alike in every rule)"
