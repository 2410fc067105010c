"""Stages of a backbone: the feature maps worth looking at, named without running a network.

A backbone is an ordered list of blocks, each feeding the next; a *stage* is a block whose
output a caller may ask for (timm's ``forward_intermediates``). Which blocks end a stage is
each network's choice, said in its docstring; :func:`resolution_stage_ends` is the usual one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StageInfo:
    """One block's output: ``name`` is the block's module path in the backbone (e.g.
    "features.3"), ``channels`` the map's depth, ``stride`` input pixels per map cell."""

    name: str
    channels: int
    stride: int


def resolution_stage_ends(blocks: Sequence[StageInfo]) -> tuple[int, ...]:
    """The last block at each resolution (the one before the size halves) and the last
    block (the final feature map): indices into ``blocks``."""
    return tuple(
        i
        for i, block in enumerate(blocks)
        if i == len(blocks) - 1 or blocks[i + 1].stride > block.stride
    )


def select_stages(indices: int | Sequence[int] | None, n: int) -> list[int]:
    """Stage numbers as timm takes them: None every stage, an int the last that many, a list
    those stages (negative ones count from the end); returned sorted, each in ``range(n)``."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"asked for the last {indices} stages of {n}")
        return list(range(n - indices, n))
    chosen = set()
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"stage {i} out of range: there are {n} stages")
        chosen.add(i % n)
    return sorted(chosen)
