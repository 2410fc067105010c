"""The index on disk: a SQLite catalogue and a FAISS vector index behind one interface."""

from lookalike.store.store import ImageRecord, Store

__all__ = ["ImageRecord", "Store"]
