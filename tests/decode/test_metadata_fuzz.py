"""Seeded fuzzing of metadata blocks: a damaged block never aborts a decode.

``benchmarks/metadata_fuzz.py`` runs the same generator for longer.
"""

from __future__ import annotations

import itertools
import warnings

from metadata_fuzz import check, fuzz_inputs

INPUTS = 2000  # about two seconds on one core


def test_damaged_metadata_decodes_or_is_refused_with_one_line() -> None:
    problems: list[str] = []
    decoded = warned = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about each bad tag it skips
        for item in itertools.islice(fuzz_inputs(seed=20240601), INPUTS):
            outcome = check(item)
            decoded += outcome.decoded
            warned += outcome.warned
            if outcome.problem:
                problems.append(f"{item.name}: {outcome.problem}")
    assert not problems, f"{len(problems)} of {INPUTS} failed, e.g. {problems[:5]}"
    # the damage reached every outcome: ignored silently (a tag lookalike does not read),
    # ignored with a warning, and files too broken to decode
    assert INPUTS * 0.8 < decoded < INPUTS and warned > INPUTS * 0.02
