"""Stage 3: write mapped batches to the store, one transaction per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lookalike.pipeline.mapper import EmbeddedFile
from lookalike.pipeline.plan import Plan
from lookalike.store import Store, Upsert

if TYPE_CHECKING:
    from lookalike.train.adapt import Adaptation

Progress = Callable[[int, int], None]  # (files done, files to do)


@dataclass
class AddReport:
    """What one ``Index.add`` did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    classified: int = 0  # unchanged files whose classes were stored (their vectors kept)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    adaptation: Adaptation | None = None  # the index adapted to its images after the files
    not_adapted: str | None = None  # why an adaptation that was due did not happen


def commit(
    store: Store,
    plan: Plan,
    batches: Iterable[list[EmbeddedFile]],
    progress: Progress | None = None,
) -> AddReport:
    """Write each batch as it comes (an interrupted run keeps what was committed), then what
    the walk skipped (so that ``info --skipped`` lists what the run reported) and the
    removals; the caller holds the store's writer lock."""
    report = AddReport(unchanged=plan.unchanged, skipped=[*plan.skipped, *plan.kept])
    done = 0
    if progress:
        progress(0, len(plan.embed))
    for batch in batches:
        store.write([_upsert(item) for item in batch])
        for item in batch:
            if item.reason:
                report.skipped.append((item.entry.path, item.reason))
            elif item.entry.path in plan.known:
                report.updated += 1
            else:
                report.added += 1
        done += len(batch)
        if progress:
            progress(done, len(plan.embed))
    if plan.skipped or plan.remove or plan.forget:
        # a walk skip has no stat to compare with: recorded as (0, 0), re-checked every run
        skips = [Upsert(path, 0, 0, None, reason) for path, reason in plan.skipped]
        store.write(skips, [*plan.remove, *plan.forget])
        report.removed = len(plan.remove)
    return report


def commit_classes(
    store: Store,
    plan: Plan,
    batches: Iterable[list[EmbeddedFile]],
    progress: Progress | None = None,
) -> int:
    """Store the classes of ``plan.classify`` (files already indexed), one transaction per
    batch, leaving their vectors as they are; returns how many files got classes."""
    done = classified = 0
    for batch in batches:
        found = [(item.entry.path, item.classes) for item in batch if item.classes is not None]
        if found:
            store.write_classes(found)
        classified += len(found)
        done += len(batch)
        if progress:
            progress(done, len(plan.classify))
    return classified


def _upsert(item: EmbeddedFile) -> Upsert:
    entry = item.entry
    return Upsert(
        entry.path,
        entry.size,
        entry.mtime_ns,
        item.vector,
        item.reason,
        item.meta,
        item.classes,
        item.local_features,
    )
