"""What every request of the web app shares: the read-only Index, the model, pools and caches."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from starlette.exceptions import HTTPException

from lookalike.embed.interface import Embedder
from lookalike.errors import LookalikeError
from lookalike.index import Index
from lookalike.present.web.files import ThumbnailCache
from lookalike.present.web.jobs import JobRunner
from lookalike.search.filters import Filters
from lookalike.search.query import Hit, RegionQuery
from lookalike.search.query import Query as SearchQuery
from lookalike.search.region import Box
from lookalike.store import ImageRecord

T = TypeVar("T")

MODEL_WAIT_S = 300.0  # a search arriving while the model loads waits this long at most


@dataclass(frozen=True)
class ServerConfig:
    """How ``lookalike serve`` runs; see ``lookalike serve --help``."""

    index_dir: Path
    token: str | None = None  # required on every request when set
    max_upload_bytes: int = 20 * 2**20
    cors_origins: tuple[str, ...] = ()
    search_threads: int = 0  # 0: one per CPU core


class Service:
    """What every request shares: the read-only Index, the model state, the pools, caches."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.index = Index.open(config.index_dir)
        self.pool = ThreadPoolExecutor(
            config.search_threads or os.cpu_count() or 2, thread_name_prefix="search"
        )
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.thumbnails = ThumbnailCache(config.index_dir)
        self.jobs = JobRunner(config.index_dir, self.embedder)
        self._collection: tuple[int, list[ImageRecord]] = (-1, [])
        self._collection_mutex = threading.Lock()

    def load_model(self) -> None:
        """Load the index's model (run in a background thread at start-up)."""
        try:
            # One small embedding warms PyTorch up, so the first user's search is not slow.
            self.index.embedder.embed([Image.new("RGB", (64, 64), (128, 128, 128))])
        except LookalikeError as exc:
            self.load_error = str(exc)
        except Exception as exc:  # no caller to raise to: /health reports it
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def embedder(self) -> Embedder:
        """The loaded model, waiting for it if it is still loading."""
        if not self.ready.wait(MODEL_WAIT_S):
            raise LookalikeError("the model is still loading; try again shortly")
        if self.load_error:
            raise LookalikeError(f"the model failed to load: {self.load_error}")
        return self.index.embedder

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a search on the search pool (quick reads use Starlette's own pool, so that
        /health and thumbnails do not queue behind searches under load)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, functools.partial(fn, *args)
        )

    def record(self, image_id: int) -> ImageRecord:
        record = self.index.record(image_id)
        if record is None or record.status != "ok":
            raise HTTPException(404, f"no indexed image with id {image_id}")
        return record

    def search(
        self, query: SearchQuery, box: Box | None, k: int, filters: Filters, exclude_self: bool
    ) -> list[Hit]:
        """The hits for a query (a path, bytes) or for the region ``box`` of it."""
        self.embedder()
        if box is not None:
            if not isinstance(query, str | bytes):
                raise TypeError("a region is cut from a path or encoded bytes")
            query = RegionQuery(query, box)
        return self.index.search(query, k, exclude_self, filters)

    def collection(self) -> list[ImageRecord]:
        """Every indexed image, re-read only when the catalogue's generation moved."""
        generation = self.index.generation()
        with self._collection_mutex:
            if self._collection[0] != generation:
                self._collection = (generation, list(self.index.records("ok")))
            return self._collection[1]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.index.close()
