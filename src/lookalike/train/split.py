"""Split labels, not images, into training and validation, so validation measures how the
model does on kinds of image it has never seen (as a search engine meets them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import LookalikeError


@dataclass(frozen=True)
class LabelSplit:
    """Disjoint sorted label sets."""

    train: tuple[str, ...]
    validation: tuple[str, ...]

    def items(
        self, items: Sequence[tuple[Path, str]]
    ) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
        """(path, label) items -> (training items, validation items), order kept."""
        train, validation = set(self.train), set(self.validation)
        return [it for it in items if it[1] in train], [it for it in items if it[1] in validation]


def split_labels(labels: Iterable[str], val_fraction: float = 0.5, seed: int = 0) -> LabelSplit:
    """Put ``round(val_fraction * n)`` of the distinct labels in validation, the rest in training.

    Labels are ranked by a hash of (seed, label): the split does not depend on the order the
    labels come in, and adding a label to the data set moves at most one other label.
    """
    distinct = sorted(set(labels))
    n_val = round(val_fraction * len(distinct))
    if not 0.0 < val_fraction < 1.0 or n_val < 2 or len(distinct) - n_val < 2:
        raise LookalikeError(
            f"cannot split {len(distinct)} labels with validation fraction {val_fraction}: "
            "training and validation each need at least 2 labels"
        )
    ranked = sorted(distinct, key=lambda label: hashlib.sha256(f"{seed}:{label}".encode()).digest())
    return LabelSplit(tuple(sorted(ranked[n_val:])), tuple(sorted(ranked[:n_val])))
