"""Near-duplicates: copies found from the index's own neighbour search, grouped without
chaining, a keeper suggested, and a safe, journalled way to move the others."""

from lookalike.dupes.bands import (
    BANDS,
    DEFAULT_BAND,
    MODEL_THRESHOLDS,
    THRESHOLDS,
    Band,
    band_of,
    thresholds_for,
)
from lookalike.dupes.find import Duplicate, DuplicateGroup, find_duplicates, resolve_threshold
from lookalike.dupes.keeper import KeeperRules, choose_keeper
from lookalike.dupes.moves import MovePlan, UndoReport, apply_moves, plan_moves, undo_moves

__all__ = [
    "BANDS",
    "DEFAULT_BAND",
    "MODEL_THRESHOLDS",
    "THRESHOLDS",
    "Band",
    "Duplicate",
    "DuplicateGroup",
    "KeeperRules",
    "MovePlan",
    "UndoReport",
    "apply_moves",
    "band_of",
    "choose_keeper",
    "find_duplicates",
    "plan_moves",
    "resolve_threshold",
    "thresholds_for",
    "undo_moves",
]
