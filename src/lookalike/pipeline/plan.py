"""Stage 1: walk the folders and diff them against the store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.files.walk import FileEntry, is_under, walk_images
from lookalike.store import Store


@dataclass
class Plan:
    """What an ``add`` of some roots has to do, found by one walk and one catalogue read."""

    embed: list[FileEntry] = field(default_factory=list)  # new or changed files
    known: set[str] = field(default_factory=set)  # paths of ``embed`` the store already has
    remove: list[str] = field(default_factory=list)  # indexed files under the roots, now gone
    forget: list[str] = field(default_factory=list)  # skipped records whose cause has gone
    unchanged: int = 0  # same size and mtime as stored: only stat'ed
    classify: list[FileEntry] = field(default_factory=list)  # unchanged, but lacking classes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), to record
    kept: list[tuple[str, str]] = field(default_factory=list)  # (indexed file, reason): as is


def absolute_roots(paths: Iterable[str | Path]) -> list[str]:
    return [os.path.abspath(os.fspath(p)) for p in paths]


def plan_add(
    store: Store,
    paths: Iterable[str | Path],
    prune: bool = False,
    on_folder: Callable[[str], None] | None = None,
    classify: bool = False,
) -> Plan:
    """Diff the image files under ``paths`` against ``store``.

    A file is unchanged when its size and mtime match the stored ones. What the walk skips
    (an unreadable folder, a dangling symlink, a FIFO...) is recorded with its reason.

    A known file that the walk did not find is removed, unless absence is no evidence that it
    is gone: it lies under a folder that failed to list, or under a root that is missing or
    empty although the store holds indexed files under it (an unmounted drive, an
    unreachable share). Those are kept and reported, unless ``prune``. A missing root the
    store holds nothing under is an error. The store's own directory is never walked.

    With ``classify`` (the model has an ImageNet classifier), unchanged files that have no
    classes stored yet (an index made before classes were) are also listed to be classified.
    """
    roots = absolute_roots(paths)
    known = store.stat_map()
    failed = {r.path for r in store.iter_records("skipped")}
    plan = Plan()
    unlisted: list[str] = []
    unclassified = store.unclassified_paths() if classify else set()

    # Only one set the size of the store: the known paths the walk has not met yet (a re-run
    # over a million unchanged files held two more, of its own path strings: 190 MB).
    def is_indexed(path: str) -> bool:
        return path in known and path not in failed

    def indexed() -> Iterator[str]:
        return filter(is_indexed, known)

    def walk_error(path: str, reason: str) -> None:
        plan.skipped.append((path, reason))
        unlisted.append(path)

    missing = [r for r in roots if not os.path.exists(r) and _any_under(indexed(), r)]
    unseen = set(known)
    found: set[str] = set()  # roots the walk found a file under
    walked = [r for r in roots if r not in missing]
    walk = walk_images(walked, walk_error, exclude=[store.location], on_folder=on_folder)
    for entry in walk:
        unseen.discard(entry.path)
        if len(found) < len(walked):
            found.update(r for r in walked if is_under(entry.path, [r]))
        old = known.get(entry.path)
        if old and (old[1], old[2]) == (entry.size, entry.mtime_ns):
            plan.unchanged += 1
            if entry.path in unclassified:
                plan.classify.append(entry)
            continue
        plan.embed.append(entry)
        if old:
            plan.known.add(entry.path)
    for root in roots:
        # nothing at all found there: no file, and no skip (which protects what is under it)
        gone = root in missing or not (
            root in found or _any_under(unlisted, root) or is_under(root, unlisted)
        )
        if gone and not prune and _any_under(indexed(), root):
            if is_indexed(root):  # a file given by name: its record stays as it is
                plan.kept.append((root, "file is missing; it stays indexed (use --prune)"))
            else:
                plan.skipped.append((root, _kept(root, _count_under(indexed(), root))))
            unlisted.append(root)
    reported = {p for p, _ in (*plan.skipped, *plan.kept)}
    for path in unseen:
        if path in reported or not is_under(path, roots):
            continue
        if not prune and is_under(path, unlisted):
            continue
        # a skipped record is no image the index held: dropped without a "removed" to report
        (plan.forget if path in failed else plan.remove).append(path)
    return plan


def _kept(root: str, held: int) -> str:
    """Why the indexed files under folder ``root`` stay although the walk found none."""
    state = "missing" if not os.path.exists(root) else "empty"
    return f"folder is {state}; its {held} indexed files are kept (use --prune to remove them)"


def _count_under(paths: Iterable[str], root: str) -> int:
    return sum(1 for p in paths if is_under(p, [root]))


def _any_under(paths: Iterable[str], root: str) -> bool:
    """Whether any of ``paths`` is ``root`` or under it: stops at the first (a re-run over
    a million unchanged files asks this of each root)."""
    return any(is_under(p, [root]) for p in paths)
