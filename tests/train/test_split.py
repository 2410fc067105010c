"""Labels, not images, are split: validation labels are never seen in training."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.errors import LookalikeError
from lookalike.train.split import split_labels

LABELS = [f"label_{i:02d}" for i in range(22)]


def test_halves_are_disjoint_and_cover_every_label() -> None:
    split = split_labels(LABELS * 3, 0.5, seed=0)  # repeated labels: one per image
    assert not set(split.train) & set(split.validation)
    assert sorted(split.train + split.validation) == LABELS
    assert len(split.validation) == 11


def test_same_seed_same_split_whatever_the_order_and_other_seeds_differ() -> None:
    a = split_labels(LABELS, 0.5, seed=3)
    assert split_labels(list(reversed(LABELS)), 0.5, seed=3) == a
    assert split_labels(LABELS, 0.5, seed=4) != a


def test_adding_a_label_moves_at_most_one_other() -> None:
    before = split_labels(LABELS, 0.5, seed=0)
    after = split_labels([*LABELS, "label_new"], 0.5, seed=0)
    moved = set(before.validation) ^ (set(after.validation) - {"label_new"})
    assert len(moved) <= 1


def test_items_follow_their_label() -> None:
    items = [(Path(f"/d/{label}/{i}.png"), label) for label in LABELS[:4] for i in range(3)]
    split = split_labels([label for _, label in items], 0.5, seed=1)
    train, validation = split.items(items)
    assert len(train) == len(validation) == 6
    assert {label for _, label in train} == set(split.train)
    assert {label for _, label in validation} == set(split.validation)


@pytest.mark.parametrize(("labels", "fraction"), [(LABELS[:3], 0.5), (LABELS, 0.0), (LABELS, 1.0)])
def test_too_few_labels_for_two_sides_is_an_error(labels: list[str], fraction: float) -> None:
    with pytest.raises(LookalikeError, match="at least 2 labels"):
        split_labels(labels, fraction)
