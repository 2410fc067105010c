"""PCA-whitening of global descriptors, learned from the indexed collection itself.

Pooled CNN descriptors have a few dominant, correlated directions (the "bursty" activations
shared by most images); whitening (Jégou and Chum 2012; Radenović et al. 2018) centres the
vectors, rotates them onto the principal axes and scales each axis by eigenvalue^-1/2, so that
every direction counts alike in the cosine similarity, then L2-normalises again.

The index learns it once from its own vectors and stores it (``to_bytes``); queries get the
same transform (``apply``). Centring alone (:func:`learn_centring`: the mean subtracted, no
rotation or scaling) is the mild form of it that helped every set measured (README).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from lookalike.normalise import l2_normalise

# Added to every eigenvalue, as a fraction of their mean: keeps the weak directions (and,
# with fewer vectors than dimensions, the empty ones) from being blown up to noise.
DEFAULT_SHRINKAGE = 0.1


@dataclass(frozen=True)
class Whitening:
    """``apply(x) = l2_normalise((x - mean) @ projection)``; mean float32 (d,), projection
    float32 (d, k) with k <= d."""

    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim(self) -> int:
        """Output dimension k."""
        return int(self.projection.shape[1])

    @property
    def centres_only(self) -> bool:
        """Whether it only subtracts the mean (:func:`learn_centring`)."""
        square = self.projection.shape[0] == self.projection.shape[1]
        return square and bool(np.array_equal(self.projection, np.eye(len(self.projection))))

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """float32 (n, d) -> float32 (n, k), rows L2-normalised."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != len(self.mean):
            raise ValueError(f"expected (n, {len(self.mean)}) vectors, got {vectors.shape}")
        return l2_normalise((vectors - self.mean) @ self.projection)

    def to_bytes(self) -> bytes:
        """An .npz archive of ``mean`` and ``projection``."""
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, projection=self.projection)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Whitening:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return cls(
                np.ascontiguousarray(archive["mean"], dtype=np.float32),
                np.ascontiguousarray(archive["projection"], dtype=np.float32),
            )


def learn_centring(vectors: np.ndarray) -> Whitening:
    """The collection's mean as a transform: float32 (n >= 1, d) descriptors -> a
    :class:`Whitening` that subtracts it and L2-normalises again (identity projection), so
    that the direction every image shares no longer counts in the cosine."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"centring needs (n >= 1, d) vectors, got shape {x.shape}")
    return Whitening(
        np.ascontiguousarray(x.mean(axis=0), dtype=np.float32),
        np.eye(x.shape[1], dtype=np.float32),
    )


def learn_whitening(
    vectors: np.ndarray, dims: int | None = None, shrinkage: float = DEFAULT_SHRINKAGE
) -> Whitening:
    """Learn PCA-whitening from float32 (n, d) descriptors (n >= 2).

    ``dims`` keeps the strongest principal directions (default: all d). ``shrinkage`` adds
    that fraction of the mean eigenvalue to each eigenvalue before the ^-1/2 scaling (0: plain
    whitening, which with n <= d divides by near-zero eigenvalues).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"whitening needs (n >= 2, d) vectors, got shape {x.shape}")
    d = x.shape[1]
    dims = d if dims is None else dims
    if not 1 <= dims <= d:
        raise ValueError(f"dims must be in 1..{d}, got {dims}")
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / len(x)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    # The mean eigenvalue is the average variance per dimension (trace / d).
    ridge = max(shrinkage * float(eigenvalues.mean()), 1e-12)
    order = np.argsort(eigenvalues)[::-1][:dims]
    projection = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + ridge)
    return Whitening(
        np.ascontiguousarray(mean, dtype=np.float32),
        np.ascontiguousarray(projection, dtype=np.float32),
    )
