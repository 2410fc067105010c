"""The three bands of likeness, and the cosine thresholds that separate them for each model.

The thresholds were measured by ``benchmarks/dupes.py quality --model M`` on the 56 real
photographs of the evaluation set, their edited copies and real photo distractors; README.md
("Finding duplicates") gives the figures behind each one. Networks spread their cosines
differently, so a model's bands are its own; a model that was not measured (a trained model
folder, say) gets mobilenet_v2's, the higher and so the safer ones.
"""

from __future__ import annotations

from typing import Literal

from lookalike.errors import LookalikeError

Band = Literal["identical", "edited", "similar"]
BANDS: tuple[Band, ...] = ("identical", "edited", "similar")
DEFAULT_BAND: Band = "edited"

# The lowest cosine score of each band (scores are cosines of the stored unit vectors), for
# mobilenet_v2, and for any model not measured.
THRESHOLDS: dict[Band, float] = {"identical": 0.95, "edited": 0.80, "similar": 0.70}
MODEL_THRESHOLDS: dict[str, dict[Band, float]] = {
    "mobilenet_v2": THRESHOLDS,
    "efficientnet_lite0_gem": {"identical": 0.95, "edited": 0.76, "similar": 0.65},
}

# With --orientations, pairs down to this score are checked for a turned or mirrored copy.
# mobilenet_v2: a photo turned 90 degrees scores 0.62-0.94 with its original;
# efficientnet_lite0_gem: 0.50-0.94 (p5 0.55), benchmarks/dupes.py.
ORIENTATION_FLOOR = 0.55
MODEL_ORIENTATION_FLOORS = {"mobilenet_v2": ORIENTATION_FLOOR, "efficientnet_lite0_gem": 0.50}


def orientation_floor_for(model_name: str) -> float:
    """The lowest score of a pair checked for a turned copy, for ``model_name``'s vectors."""
    return MODEL_ORIENTATION_FLOORS.get(model_name, ORIENTATION_FLOOR)


def thresholds_for(model_name: str) -> dict[Band, float]:
    """The bands' thresholds for the vectors of ``model_name`` (a registry name or a model
    folder): its own where measured, else mobilenet_v2's."""
    return MODEL_THRESHOLDS.get(model_name, THRESHOLDS)


def threshold_of(band: str, thresholds: dict[Band, float] = THRESHOLDS) -> float:
    """The lowest score a pair of ``band`` has; raises LookalikeError for an unknown band."""
    if band not in thresholds:
        raise LookalikeError(f"unknown band {band!r}; choose from {', '.join(BANDS)}")
    return thresholds[band]


def band_of(
    score: float, transform: str | None = None, thresholds: dict[Band, float] = THRESHOLDS
) -> Band:
    """The band of a pair's score. A turned or mirrored copy is an edit, never identical."""
    if score >= thresholds["identical"] and transform is None:
        return "identical"
    if score >= thresholds["edited"]:
        return "edited"
    return "similar"


def describe_thresholds() -> str:
    """Each measured model's bands in one line, for help texts."""
    return "; ".join(
        f"{model}: " + ", ".join(f"{b} >= {t[b]:.2f}" for b in BANDS)
        for model, t in MODEL_THRESHOLDS.items()
    )


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise LookalikeError(f"a threshold is a cosine score in (0, 1], got {threshold}")
    return threshold
