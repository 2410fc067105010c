"""Where image records and vectors are kept, behind one protocol (:class:`Store`).

``open_store`` and ``create_store`` pick the implementation from the location: a directory is
the embedded SQLite + FAISS store.
"""

from __future__ import annotations

from pathlib import Path

from lookalike.store.base import Ranking, Store, StoreInfo
from lookalike.store.catalogue import Upsert
from lookalike.store.local import LocalStore
from lookalike.store.record import ImageRecord

__all__ = [
    "ImageRecord",
    "LocalStore",
    "Ranking",
    "Store",
    "StoreInfo",
    "Upsert",
    "create_store",
    "open_store",
    "prepare_location",
    "store_exists",
]


def store_exists(location: str | Path) -> bool:
    return LocalStore.exists(Path(location))


def open_store(location: str | Path) -> Store:
    """The existing store at ``location`` (raises IndexNotFoundError when there is none)."""
    return LocalStore.open(Path(location))


def prepare_location(location: str | Path) -> None:
    """Check (and make) where a new store will go, before a model is loaded for it."""
    LocalStore.make_directory(Path(location))


def create_store(
    location: str | Path, model_name: str, model_id: str, dim: int, compact: bool = False
) -> Store:
    """A new, empty store at ``location`` for vectors of ``model_id`` (``dim`` floats);
    ``compact`` keeps them small, about 1 KB an image (store/codec.py, store/ann.py)."""
    return LocalStore.create(Path(location), model_name, model_id, dim, compact)
