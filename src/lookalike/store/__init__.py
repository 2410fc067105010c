"""Where image records and vectors are kept, behind one protocol (:class:`Store`).

``open_store`` and ``create_store`` pick the implementation from the location: a directory is
the embedded SQLite + FAISS store, ``milvus://HOST:PORT/COLLECTION`` a Milvus collection
(:mod:`lookalike.store.milvus`, which imports pymilvus only when used).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.config import cache_home
from lookalike.errors import LookalikeError
from lookalike.store.base import Ranking, Store, StoreInfo
from lookalike.store.catalogue import Upsert
from lookalike.store.local import LocalStore
from lookalike.store.milvus import MilvusLocation, MilvusStore, is_milvus
from lookalike.store.record import ImageRecord

__all__ = [
    "ImageRecord",
    "LocalStore",
    "Ranking",
    "Store",
    "StoreInfo",
    "Upsert",
    "create_store",
    "is_milvus",
    "local_only",
    "open_store",
    "prepare_location",
    "raw_cosines",
    "side_folder",
    "store_exists",
]


def store_exists(location: str | Path) -> bool:
    if is_milvus(location):
        return MilvusStore.exists(str(location))
    return LocalStore.exists(Path(location))


def open_store(location: str | Path) -> Store:
    """The existing store at ``location`` (raises IndexNotFoundError when there is none)."""
    if is_milvus(location):
        return MilvusStore.open(str(location))
    return LocalStore.open(Path(location))


def prepare_location(location: str | Path) -> None:
    """Check (and make) where a new store will go, before a model is loaded for it."""
    if is_milvus(location):
        MilvusStore.prepare(str(location))
    else:
        LocalStore.make_directory(Path(location))


def side_folder(location: str | Path) -> Path:
    """Where files kept beside an index go (web thumbnails): the index directory itself, or
    for a Milvus collection a folder of the user's cache named after it."""
    if is_milvus(location):
        where = MilvusLocation.parse(str(location))
        return cache_home() / "milvus" / f"{where.host}-{where.port}-{where.collection}"
    return Path(location)


def local_only(location: str | Path, command: str) -> Path:
    """The index directory for a command that works on an embedded index's files only
    (check, backup), or a one-line LookalikeError for a Milvus collection."""
    if is_milvus(location):
        raise LookalikeError(
            f"'lookalike {command}' works on an embedded index directory; {location} is a "
            "Milvus collection, which Milvus itself keeps (see the README: Milvus)"
        )
    return Path(location)


def create_store(
    location: str | Path, model_name: str, model_id: str, dim: int, compact: bool = False
) -> Store:
    """A new, empty store at ``location`` for vectors of ``model_id`` (``dim`` floats);
    ``compact`` keeps them small, about 1 KB an image (store/codec.py, store/ann.py)."""
    if is_milvus(location):
        return MilvusStore.create(str(location), model_name, model_id, dim, compact)
    return LocalStore.create(Path(location), model_name, model_id, dim, compact)


def raw_cosines(store: Store, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The model's own cosines, whatever whitening ``store`` searches through: of each raw
    query row (float32 (n, dim)) with the stored raw vectors of its row of ``ids`` (int64
    (n, m), -1 for none), float32 (n, m) with -inf where there is none. The vectors are
    looked up in one call, not kept: a scan of the whole index must not hold every vector."""
    scores = np.full(ids.shape, -np.inf, np.float32)
    stored = store.vectors_of(np.unique(ids[ids >= 0]).tolist())
    for row, col in zip(*np.nonzero(ids >= 0), strict=True):
        raw = stored.get(int(ids[row, col]))
        if raw is not None:
            scores[row, col] = float(queries[row] @ raw)
    return scores
