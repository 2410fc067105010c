"""Moving copies out of the way, safely: a plan first, a journal before anything moves, and an
undo that puts every file back. Nothing is ever deleted, and the index follows each move
(the moved file keeps its stored vector, metadata and classes: nothing is embedded again).

A moved file keeps its path relative to the collection's root (the deepest folder holding
every indexed image) under the destination: ``/photos/2020/a.jpg`` moved to ``/review``
from a collection under ``/photos`` lands at ``/review/2020/a.jpg``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.embed.classes import TopClasses
from lookalike.errors import LookalikeError
from lookalike.files.walk import is_under
from lookalike.search.filters import Filters
from lookalike.store import Store
from lookalike.store.catalogue import Upsert
from lookalike.store.record import meta_of

JOURNAL_FORMAT = "lookalike-moves/1"


@dataclass(frozen=True)
class Move:
    source: str  # absolute
    target: str  # absolute


@dataclass(frozen=True)
class MovePlan:
    """Where each file goes; ``problems`` (one line each) stop :func:`apply_moves`."""

    destination: str
    root: str
    moves: list[Move]
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UndoReport:
    restored: int
    problems: list[str]


def collection_root(paths: Iterable[str], leave_out: str | None = None) -> str:
    """The deepest folder that holds every path (those under ``leave_out`` aside)."""
    folders = [os.path.dirname(p) for p in paths if not (leave_out and is_under(p, [leave_out]))]
    return os.path.commonpath(folders) if folders else os.sep


def plan_moves(store: Store, paths: Sequence[str], destination: str | Path) -> MovePlan:
    """Where ``paths`` (indexed files) would go under ``destination``; nothing moves."""
    target_dir = os.path.abspath(os.path.expanduser(os.fspath(destination)))
    if os.path.isfile(target_dir):
        raise LookalikeError(f"cannot move files into {target_dir}: it is a file")
    root = collection_root(store.stat_map(), leave_out=target_dir)
    moves, problems = [], []
    for path in dict.fromkeys(os.path.abspath(p) for p in paths):
        if store.record_by_path(path) is None:
            problems.append(f"{path} is not in the index")
            continue
        relative = os.path.relpath(path, root) if is_under(path, [root]) else path.lstrip(os.sep)
        target = os.path.join(target_dir, relative)
        if is_under(path, [target_dir]):
            problems.append(f"{path} is already under {target_dir}")
        elif not os.path.isfile(path):
            problems.append(f"{path} is missing")
        elif os.path.lexists(target):
            problems.append(f"{target} exists already (nothing is overwritten)")
        moves.append(Move(path, target))
    return MovePlan(target_dir, root, moves, problems)


def apply_moves(store: Store, plan: MovePlan) -> Path:
    """Move the planned files and the index with them; returns the journal's path (written
    before the first move, so that an interrupted run can be undone too)."""
    if plan.problems:
        raise LookalikeError(f"nothing moved: {plan.problems[0]}")
    if not plan.moves:
        raise LookalikeError("nothing to move")
    with store.writing():
        os.makedirs(plan.destination, exist_ok=True)
        journal = Path(plan.destination) / f"lookalike-moves-{time.strftime('%Y%m%d-%H%M%S')}"
        journal = _unused(journal)
        _write_journal(journal, store.location, plan, undone=None)
        done = []
        try:
            for move in plan.moves:
                _move(move.source, move.target)
                done.append(move)
        finally:
            follow_moves(store, done)
    return journal


def undo_moves(store: Store, journal: str | Path) -> UndoReport:
    """Put back every file a journal moved (and the index with them); a file that is no
    longer where it was moved to, or whose old place is taken, is reported and left."""
    path = Path(journal)
    plan, index, undone = read_journal(path)
    if undone:
        raise LookalikeError(f"{path} was undone already ({undone})")
    if os.path.realpath(index) != os.path.realpath(store.location):
        raise LookalikeError(f"{path} records moves of the index {index}, not of {store.location}")
    problems, back = [], []
    with store.writing():
        try:
            for move in reversed(plan.moves):
                if not os.path.isfile(move.target):
                    problems.append(f"{move.target} is gone: not restored")
                elif os.path.lexists(move.source):
                    problems.append(f"{move.source} exists again: {move.target} left where it is")
                else:
                    _move(move.target, move.source)
                    back.append(Move(move.target, move.source))
                    _remove_empty_folders(os.path.dirname(move.target), plan.destination)
        finally:
            follow_moves(store, back)
    _write_journal(path, index, plan, undone=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return UndoReport(len(back), problems)


def follow_moves(store: Store, moves: Sequence[Move]) -> None:
    """One write: each moved file upserted at its new path with what the index knew of it
    (vector, metadata, classes, new stat), its old path removed."""
    upserts, removals = [], []
    for move in moves:
        record = store.record_by_path(move.source)
        if record is None:
            continue
        stat = os.stat(move.target)
        vector = store.vector(record.id) if record.status == "ok" else None
        upserts.append(
            Upsert(
                move.target,
                stat.st_size,
                stat.st_mtime_ns,
                vector,
                record.reason,
                meta_of(record),
                _classes(store, record.id),
            )
        )
        removals.append(move.source)
    if upserts:
        store.write(upserts, removals)


def _classes(store: Store, image_id: int) -> TopClasses | None:
    table = store.class_table(Filters(ids=frozenset({image_id})))
    if not len(table.ids):
        return None
    keep = table.probs[0] > 0  # rows are padded with p = 0
    return TopClasses(
        np.asarray(table.classes[0][keep], np.uint16), np.asarray(table.probs[0][keep], np.float16)
    )


def _move(source: str, target: str) -> None:
    """Move one file, never over another (across file systems: copy, then remove the
    source)."""
    if os.path.lexists(target):
        raise LookalikeError(f"{target} exists already (nothing is overwritten)")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        shutil.move(source, target)
    except OSError as exc:
        raise LookalikeError(f"cannot move {source} to {target}: {exc.strerror}") from exc


def _remove_empty_folders(folder: str, stop: str) -> None:
    """Remove the folders the moves made, up to ``stop`` (excluded), while they are empty."""
    while is_under(folder, [stop]) and os.path.normpath(folder) != os.path.normpath(stop):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)


def _unused(stem: Path) -> Path:
    candidate, number = stem.with_suffix(".json"), 1
    while candidate.exists():
        number += 1
        candidate = stem.with_name(f"{stem.name}-{number}.json")
    return candidate


def _write_journal(path: Path, index: str, plan: MovePlan, undone: str | None) -> None:
    data = {
        "format": JOURNAL_FORMAT,
        "index": index,
        "destination": plan.destination,
        "root": plan.root,
        "moves": [{"from": m.source, "to": m.target} for m in plan.moves],
        "undone": undone,
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def read_journal(path: Path) -> tuple[MovePlan, str, str | None]:
    """(the moves, the index they were made in, when they were undone or None)."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != JOURNAL_FORMAT:
            raise ValueError("not a journal of lookalike dupes")
        moves = [Move(m["from"], m["to"]) for m in data["moves"]]
        plan = MovePlan(data["destination"], data["root"], moves)
        return plan, str(data["index"]), data.get("undone")
    except OSError as exc:
        raise LookalikeError(f"cannot read journal {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LookalikeError(f"{path} is not a journal of lookalike dupes ({exc})") from exc
