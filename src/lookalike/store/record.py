"""One indexed file: the single definition its catalogue columns and API schemas come from."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from lookalike.decode.image import ImageMeta


@dataclass(frozen=True, kw_only=True)
class ImageRecord(ImageMeta):
    """A file the index knows: how ``stat`` saw it, whether it was embedded, and what decoding
    told (the :class:`ImageMeta` fields). Its vector is kept apart, by ``id``."""

    id: int  # never reused: ids stay stable for clients
    path: str  # absolute
    size: int  # bytes
    mtime_ns: int
    status: str  # 'ok' (embedded) or 'skipped' (with a reason)
    reason: str | None = None
    model_id: str | None = None  # the vector space of its vector, when embedded


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageRecord))
META_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageMeta))


def record_from_row(row: typing.Sequence[Any]) -> ImageRecord:
    """An ``ImageRecord`` from a row of the columns in ``RECORD_FIELDS`` order."""
    return ImageRecord(**dict(zip(RECORD_FIELDS, row, strict=True)))


def meta_of(record: ImageRecord) -> ImageMeta:
    return ImageMeta(**{name: getattr(record, name) for name in META_FIELDS})


_SQL_TYPES = {int: "INTEGER", str: "TEXT", float: "REAL"}
_CONSTRAINTS = {
    "id": "PRIMARY KEY AUTOINCREMENT",
    "path": "UNIQUE",
    "status": "CHECK (status IN ('ok', 'skipped'))",
}


def column_definitions() -> list[str]:
    """``name TYPE [NOT NULL] [constraint]`` for every field, derived from the annotations."""
    hints = typing.get_type_hints(ImageRecord)
    columns = []
    for name in RECORD_FIELDS:
        kinds = [t for t in typing.get_args(hints[name]) or (hints[name],) if t is not type(None)]
        nullable = type(None) in typing.get_args(hints[name])
        sql = f"{name} {_SQL_TYPES[kinds[0]]}"
        if not nullable and name != "id":
            sql += " NOT NULL"
        if name in _CONSTRAINTS:
            sql += " " + _CONSTRAINTS[name]
        columns.append(sql)
    return columns
