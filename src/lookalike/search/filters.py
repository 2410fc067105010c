"""Search filters as data: a store pushes them down into its search (a set of allowed ids for
FAISS, a boolean expression for a vector database) instead of trimming results afterwards."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from lookalike.files.paths import to_stored
from lookalike.files.walk import is_under

if TYPE_CHECKING:  # the store imports this module to push filters down
    from lookalike.store.record import ImageRecord


@dataclass(frozen=True)
class Filters:
    """Conditions every result meets. Dates compare the EXIF capture day, inclusive; an image
    without a capture date never passes a date condition. ``ids`` keeps only those images."""

    folder: str | None = None  # absolute folder: results under it only (whole folder names)
    taken_after: date | None = None
    taken_before: date | None = None
    min_width: int = 0
    min_height: int = 0
    ids: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.folder is not None:
            object.__setattr__(self, "folder", os.path.abspath(self.folder))

    @property
    def active(self) -> bool:
        return bool(
            self.folder
            or self.taken_after
            or self.taken_before
            or self.min_width
            or self.min_height
            or self.ids is not None
        )

    def accepts(self, record: ImageRecord) -> bool:
        """The meaning of the filters, one record at a time; stores must agree with it."""
        if self.ids is not None and record.id not in self.ids:
            return False
        if self.folder and not is_under(record.path, [self.folder]):
            return False
        if (record.width or 0) < self.min_width or (record.height or 0) < self.min_height:
            return False
        if self.taken_after or self.taken_before:
            if not record.taken_at:
                return False
            day = record.taken_at[:10]
            if self.taken_after and day < self.taken_after.isoformat():
                return False
            if self.taken_before and day > self.taken_before.isoformat():
                return False
        return True


def milvus_expression(filters: Filters) -> str:
    """The filters as a Milvus boolean expression over the Milvus store's columns
    (:mod:`lookalike.store.milvus`), embedded images only; it means what ``accepts`` means.

    The folder is a range of the path, ``["folder/", "folder0")`` as '0' follows '/', so no
    character of a name is a wildcard; string literals are JSON strings, which Milvus reads."""
    terms = ['status == "ok"']
    if filters.folder:
        folder = to_stored(filters.folder)
        prefix = folder.rstrip("/") + "/"
        terms.append(
            f"(path == {_literal(folder)} or "
            f"(path >= {_literal(prefix)} and path < {_literal(prefix[:-1] + '0')}))"
        )
    if filters.min_width:
        terms.append(f"width >= {int(filters.min_width)}")
    if filters.min_height:
        terms.append(f"height >= {int(filters.min_height)}")
    if filters.taken_after or filters.taken_before:
        terms.append('taken_day != ""')  # no capture date never passes a date condition
    if filters.taken_after:
        terms.append(f"taken_day >= {_literal(filters.taken_after.isoformat())}")
    if filters.taken_before:
        terms.append(f"taken_day <= {_literal(filters.taken_before.isoformat())}")
    if filters.ids is not None:
        terms.append(f"id in {sorted(int(i) for i in filters.ids)}" if filters.ids else "id < 0")
    return " and ".join(terms)


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


NO_FILTERS = Filters()
