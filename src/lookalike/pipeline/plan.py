"""Stage 1: walk the folders and diff them against the store."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.files.walk import FileEntry, is_under, walk_images
from lookalike.store import Store


@dataclass
class Plan:
    """What an ``add`` of some roots has to do, found by one walk and one catalogue read."""

    embed: list[FileEntry] = field(default_factory=list)  # new or changed files
    known: set[str] = field(default_factory=set)  # paths of ``embed`` the store already has
    remove: list[str] = field(default_factory=list)  # known files under the roots, now gone
    unchanged: int = 0  # same size and mtime as stored: only stat'ed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) from the walk


def absolute_roots(paths: Iterable[str | Path]) -> list[str]:
    return [os.path.abspath(os.fspath(p)) for p in paths]


def plan_add(store: Store, paths: Iterable[str | Path]) -> Plan:
    """Diff the image files under ``paths`` against ``store``.

    A file is unchanged when its size and mtime match the stored ones. A known file that the
    walk did not find is removed, unless it lies under a folder that failed to list (an
    unreadable folder is no evidence that its files are gone)."""
    roots = absolute_roots(paths)
    plan = Plan()
    unlisted: list[str] = []

    def walk_error(path: str, reason: str) -> None:
        plan.skipped.append((path, reason))
        unlisted.append(path)

    known = store.stat_map()
    seen: set[str] = set()
    for entry in walk_images(roots, on_error=walk_error):
        seen.add(entry.path)
        old = known.get(entry.path)
        if old and (old[1], old[2]) == (entry.size, entry.mtime_ns):
            plan.unchanged += 1
            continue
        plan.embed.append(entry)
        if old:
            plan.known.add(entry.path)
    plan.remove = [
        p for p in known if p not in seen and is_under(p, roots) and not is_under(p, unlisted)
    ]
    return plan
