"""The three bands of likeness, and the cosine thresholds that separate them.

The thresholds were measured by ``benchmarks/dupes.py`` (mobilenet_v2, the default model) on
the 56 real photographs of the evaluation set, their edited copies and real photo
distractors; README.md ("Finding duplicates") gives the figures behind each one.
"""

from __future__ import annotations

from typing import Literal

from lookalike.errors import LookalikeError

Band = Literal["identical", "edited", "similar"]
BANDS: tuple[Band, ...] = ("identical", "edited", "similar")

# The lowest cosine score of each band (scores are cosines of the stored unit vectors).
THRESHOLDS: dict[Band, float] = {"identical": 0.95, "edited": 0.80, "similar": 0.70}
DEFAULT_BAND: Band = "edited"


def threshold_of(band: str) -> float:
    """The lowest score a pair of ``band`` has; raises LookalikeError for an unknown band."""
    if band not in THRESHOLDS:
        raise LookalikeError(f"unknown band {band!r}; choose from {', '.join(BANDS)}")
    return THRESHOLDS[band]


def band_of(score: float, transform: str | None = None) -> Band:
    """The band of a pair's score. A turned or mirrored copy is an edit, never identical."""
    if score >= THRESHOLDS["identical"] and transform is None:
        return "identical"
    if score >= THRESHOLDS["edited"]:
        return "edited"
    return "similar"


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise LookalikeError(f"a threshold is a cosine score in (0, 1], got {threshold}")
    return threshold
