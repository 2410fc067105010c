"""PCA-whitening of global descriptors, learned from the indexed collection itself.

Pooled CNN descriptors have a few dominant, correlated directions (the "bursty" activations
shared by most images); whitening (Jégou and Chum 2012; Radenović et al. 2018) centres the
vectors, rotates them onto the principal axes and scales each axis by eigenvalue^-1/2, so that
every direction counts alike in the cosine similarity, then L2-normalises again.

The index learns it once from its own vectors and stores it (``to_bytes``); queries get the
same transform (``apply``). Centring alone (:func:`learn_centring`: the mean subtracted, no
rotation or scaling) is the mild form of it that helped every set measured (README).
With labels, :func:`learn_label_whitening` whitens the differences between images of one
label instead, so that what varies within a label (style, colour, pose) counts least.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.normalise import l2_normalise

# Added to every eigenvalue, as a fraction of their mean: keeps the weak directions (and,
# with fewer vectors than dimensions, the empty ones) from being blown up to noise.
DEFAULT_SHRINKAGE = 0.1
# Within-label covariances are far from full rank with a few hundred labelled images: a
# larger ridge kept held-out labels best (clip art 0.3-10, README "Train").
DEFAULT_LABEL_SHRINKAGE = 3.0


# What a whitening was learned as: its kind, kept with it (older ones say nothing).
PCA, CENTRE, LABELS, ADAPTED = "pca", "centre", "labels", "adapted"


@dataclass(frozen=True)
class Whitening:
    """``apply(x) = l2_normalise((x - mean) @ projection)``; mean float32 (d,), projection
    float32 (d, k) with k <= d; ``kind`` says how it was learned (PCA, CENTRE, LABELS or
    ADAPTED: from an image collection's augmented views, :mod:`lookalike.train.adapt`);
    ``collection`` the number of images the index held when it was learned (0: not known),
    by which an adapted index knows when it has grown enough to adapt again."""

    mean: np.ndarray
    projection: np.ndarray
    kind: str = PCA
    collection: int = 0

    @property
    def dim(self) -> int:
        """Output dimension k."""
        return int(self.projection.shape[1])

    @property
    def centres_only(self) -> bool:
        """Whether it only subtracts the mean (:func:`learn_centring`)."""
        return self.kind == CENTRE

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """float32 (n, d) -> float32 (n, k), rows L2-normalised."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != len(self.mean):
            raise ValueError(f"expected (n, {len(self.mean)}) vectors, got {vectors.shape}")
        return l2_normalise((vectors - self.mean) @ self.projection)

    def to_bytes(self) -> bytes:
        """An .npz archive of ``mean``, ``projection``, ``kind`` and ``collection``."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            mean=self.mean,
            projection=self.projection,
            kind=np.array(self.kind),
            collection=np.array(self.collection),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Whitening:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            projection = np.ascontiguousarray(archive["projection"], dtype=np.float32)
            if "kind" in archive:
                kind = str(archive["kind"])
            else:  # written before kinds were kept: a centring is the identity projection
                square = projection.shape[0] == projection.shape[1]
                kind = (
                    CENTRE
                    if square and np.array_equal(projection, np.eye(len(projection)))
                    else PCA
                )
            collection = int(archive["collection"]) if "collection" in archive else 0
            mean = np.ascontiguousarray(archive["mean"], dtype=np.float32)
            return cls(mean, projection, kind, collection)


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
        CENTRE,
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
    eigenvalues, eigenvectors = _principal_axes(centred.T @ centred / len(x))
    projection = eigenvectors[:, :dims] / np.sqrt(
        eigenvalues[:dims] + _ridge(eigenvalues, shrinkage)
    )
    return Whitening(
        np.ascontiguousarray(mean, dtype=np.float32),
        np.ascontiguousarray(projection, dtype=np.float32),
    )


def learn_label_whitening(
    vectors: np.ndarray,
    labels: Sequence[object] | np.ndarray,
    shrinkage: float = DEFAULT_LABEL_SHRINKAGE,
) -> Whitening:
    """Learn whitening from labelled float32 (n, d) descriptors (at least 2 labels of 2 images).

    Learned whitening of Radenović et al. (2018), after Mikolajczyk and Matas (2007): the
    within-label covariance (each vector minus its label's mean) is whitened, with
    ``shrinkage`` times its mean eigenvalue added first, so that the directions along which
    images of one label differ are shrunk; then the whitened, L2-normalised vectors are
    rotated onto their principal axes. Output dimension d.
    """
    x = np.asarray(vectors, dtype=np.float64)
    names = np.asarray([str(label) for label in labels])
    if x.ndim != 2 or len(names) != len(x):
        raise ValueError(f"expected (n, d) vectors and n labels, got {x.shape} and {len(names)}")
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    _, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    if (counts >= 2).sum() < 2:
        raise ValueError("label whitening needs at least 2 labels of at least 2 images")
    sums = np.zeros((len(counts), x.shape[1]))
    np.add.at(sums, inverse, x)
    within = x - (sums / counts[:, None])[inverse]
    eigenvalues, eigenvectors = _principal_axes(within.T @ within / len(x))
    shrink = eigenvectors / np.sqrt(eigenvalues + _ridge(eigenvalues, shrinkage))
    mean = x.mean(axis=0)
    shrunk = l2_normalise(((x - mean) @ shrink).astype(np.float32)).astype(np.float64)
    _, rotation = _principal_axes(np.cov(shrunk, rowvar=False))
    return Whitening(
        np.ascontiguousarray(mean, dtype=np.float32),
        np.ascontiguousarray(shrink @ rotation, dtype=np.float32),
        LABELS,
    )


def _principal_axes(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A covariance matrix's eigenvalues (clipped at 0), largest first, and their
    eigenvectors as columns."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    return np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]


def _ridge(eigenvalues: np.ndarray, shrinkage: float) -> float:
    # The mean eigenvalue is the average variance per dimension (trace / d).
    return max(shrinkage * float(eigenvalues.mean()), 1e-12)
