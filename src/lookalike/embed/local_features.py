"""Local descriptors for spatial verification, taken from a map the network computes anyway.

A global vector mostly matches an image's style; two images of the same thing also share
parts in the same layout. Each cell of a mid-level feature map (the stage at stride 16,
MobileNetV2's 96 channels x 14 x 14) describes one patch of the image. An image keeps its
``KEEP`` cells of largest activation norm (where the network sees the most, as DELF's
attention would pick) as L2-normalised float16 descriptors with the cell centres, about
19 KB per image for MobileNetV2; :mod:`lookalike.search.spatial` matches them.

The stage is the backbone's second-to-last, chosen on seeded subsets of the evaluation sets
(README, "Re-ranking by local features"): the final 7x7 map's cells, even reduced to 128
dimensions by PCA, gained a seventh as much on icons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEEP = 100  # cells kept per image
STAGE = -2  # the backbone stage they come from (second-to-last: stride 16)


@dataclass(frozen=True)
class LocalFeatures:
    """One image's local descriptors: ``positions`` float16 (n, 2), each cell's centre (x, y)
    in units of the map's longer side (0..1, the same for every image size); ``descriptors``
    float16 (n, d), unit rows, strongest cell first."""

    positions: np.ndarray
    descriptors: np.ndarray

    def to_bytes(self) -> tuple[bytes, bytes]:
        return (
            np.ascontiguousarray(self.positions, dtype="<f2").tobytes(),
            np.ascontiguousarray(self.descriptors, dtype="<f2").tobytes(),
        )

    @classmethod
    def from_bytes(cls, positions: bytes, descriptors: bytes) -> LocalFeatures:
        xy = np.frombuffer(positions, dtype="<f2").reshape(-1, 2)
        return cls(xy, np.frombuffer(descriptors, dtype="<f2").reshape(len(xy), -1))

    @property
    def nbytes(self) -> int:
        return int(self.positions.nbytes + self.descriptors.nbytes)


def local_features(stage_map: np.ndarray, keep: int = KEEP) -> list[LocalFeatures]:
    """float32 (n, c, h, w) feature maps -> each image's ``keep`` strongest cells."""
    n, c, h, w = stage_map.shape
    cells = np.ascontiguousarray(stage_map.reshape(n, c, h * w).transpose(0, 2, 1))
    norms = np.linalg.norm(cells, axis=2)  # (n, h*w)
    order = np.argsort(-norms, axis=1, kind="stable")[:, :keep]
    chosen = np.take_along_axis(cells, order[:, :, None], axis=1)
    chosen /= np.maximum(np.take_along_axis(norms, order, axis=1), 1e-12)[:, :, None]
    rows, cols = np.divmod(order, w)
    positions = np.stack([cols + 0.5, rows + 0.5], axis=-1) / max(h, w)
    return [
        LocalFeatures(positions[i].astype(np.float16), chosen[i].astype(np.float16))
        for i in range(n)
    ]
