"""What every request of the web app shares: the read-only Index, the model, pools and caches."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from PIL import Image
from starlette.exceptions import HTTPException

from lookalike.dupes import DuplicateGroup, MovePlan, resolve_threshold
from lookalike.embed.interface import Embedder
from lookalike.errors import LookalikeError
from lookalike.files.walk import is_under
from lookalike.index import Index
from lookalike.present.web.files import ThumbnailCache
from lookalike.present.web.jobs import JobRunner, covering_folders
from lookalike.search.filters import Filters
from lookalike.search.query import Hit, RegionQuery, SearchResult, TextQuery
from lookalike.search.query import Query as SearchQuery
from lookalike.search.region import REGION_DECODE_SIDE, Box
from lookalike.search.text import text_search
from lookalike.store import ImageRecord, side_folder

T = TypeVar("T")

MODEL_WAIT_S = 300.0  # a search arriving while the model loads waits this long at most
SUGGESTED_FOLDER = "lookalike-duplicates"  # under the first allowed root, for moved copies


@dataclass(frozen=True)
class DuplicateScan:
    """One scan for duplicates, kept until the index changes."""

    generation: int
    threshold: float
    orientations: bool
    groups: list[DuplicateGroup]


@dataclass(frozen=True)
class ServerConfig:
    """How ``lookalike serve`` runs; see ``lookalike serve --help``."""

    index_dir: str | Path  # an index directory, or milvus://HOST:PORT/COLLECTION
    token: str | None = None  # required on every request when set
    max_upload_bytes: int = 20 * 2**20
    max_upload_pixels: int = 40_000_000  # as decoded: a JPEG at reduced size, a PNG in full
    cors_origins: tuple[str, ...] = ()
    search_threads: int = 0  # 0: one per CPU core
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides the loopback ones
    allowed_roots: tuple[str, ...] | None = None  # jobs add only under these; None: see Service


def check_upload_size(data: bytes, max_pixels: int) -> None:
    """Refuse (413) an upload that would decode to more than ``max_pixels``, from its header
    alone: a JPEG counts at the reduced scale search decodes it at (``draft``; no search asks
    for more than REGION_DECODE_SIDE), other formats in full."""
    refusal = f"over the upload limit of {max_pixels / 1e6:g} megapixels"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (REGION_DECODE_SIDE, REGION_DECODE_SIDE))
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HTTPException(413, f"image too large: {refusal}") from exc
    except Exception:  # Pillow raises many kinds for a bad header: decoding names the reason
        return
    if width * height > max_pixels:
        raise HTTPException(413, f"image too large: {width}x{height} pixels to decode, {refusal}")


class Service:
    """What every request shares: the read-only Index, the model state, the pools, caches."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.index = Index.open(config.index_dir)
        threads = config.search_threads or os.cpu_count() or 2
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="search")
        # Uploads are decoded and embedded on their own, smaller pool: however many arrive,
        # they leave threads (and cores) to the searches by id, and few are decoded at once.
        self.upload_pool = ThreadPoolExecutor(max(1, threads // 2), thread_name_prefix="upload")
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.thumbnails = ThumbnailCache(side_folder(config.index_dir))
        self.jobs = JobRunner(config.index_dir, self.embedder)
        self._collection: tuple[int, list[ImageRecord]] = (-1, [])
        self._collection_mutex = threading.Lock()
        self._scans: dict[tuple[float, bool, str], DuplicateScan] = {}
        self._scan_mutex = threading.Lock()

    def load_model(self) -> None:
        """Load the index's model (run in a background thread at start-up)."""
        try:
            # One small embedding warms the model up, so the first user's search is not slow.
            self.index.embedder.embed([Image.new("RGB", (64, 64), (128, 128, 128))])
            torch = sys.modules.get("torch")  # imported only by a model that runs in PyTorch
            if torch is not None:
                # Parallelism comes from the search pool (a thread per core), not from inside
                # PyTorch: its own threads wait on each other, and under load one search then
                # stalls for seconds; one thread per search measured 25 ms against 60 ms to
                # 3 s (2 busy cores).
                torch.set_num_threads(1)
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

    async def run(self, fn: Callable[..., T], *args: Any, pool: Executor | None = None) -> T:
        """Run a search on ``pool``, by default the search pool (quick reads use Starlette's
        own pool, so that /health and thumbnails do not queue behind searches under load)."""
        return await asyncio.get_running_loop().run_in_executor(
            pool or self.pool, functools.partial(fn, *args)
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

    @functools.cached_property
    def text_search(self) -> str | None:
        """How this index is searched by words: "classes", "clip", or None (it cannot be)."""
        return text_search(self.index.store.model_name)

    def search_text(self, text: str, k: int, filters: Filters) -> SearchResult:
        """The hits for words, and what they matched; raises where they cannot be searched.
        Through classes no model is needed, so it answers while the model still loads."""
        if self.text_search == "clip":
            self.embedder()
        result = self.index.search_many([TextQuery(text)], k, False, filters)[0]
        if result.cause is not None:
            raise result.cause
        return result

    def search_upload(
        self, upload: IO[bytes], box: Box | None, k: int, filters: Filters
    ) -> list[Hit]:
        """The hits for an uploaded image file; a 413 when it would decode to more than
        ``max_upload_pixels``. Read here, on the upload pool, so that uploads waiting for
        it stay in their spooled files rather than in memory."""
        data = upload.read()
        check_upload_size(data, self.config.max_upload_pixels)
        return self.search(data, box, k, filters, False)

    def explain(self, query: int | bytes, result: int, box: Box | None) -> dict[str, object]:
        """Why ``result`` (an id) matched ``query`` (an id, or uploaded bytes checked like an
        upload): :meth:`lookalike.explain.Explanation.as_dict`."""
        from lookalike.explain.similarity import explain_match  # PyTorch: only when asked

        self.embedder()
        if isinstance(query, bytes):
            check_upload_size(query, self.config.max_upload_pixels)
        return explain_match(self.index, query, result, box).as_dict()

    def layers(self, source: str, channels: int) -> dict[str, object]:
        """What the index's network sees in the image file ``source``
        (:func:`lookalike.explain.layer_views`, as JSON)."""
        from lookalike.decode.image import decode_image
        from lookalike.explain.layers import layer_views

        embedder = self.embedder()
        image = decode_image(source, max_side=embedder.image_size).image
        return layer_views(embedder, image, channels).as_dict()

    def allowed_roots(self) -> list[str]:
        """The folders a job may add under: ``--allow-root``, else the folders the index
        already holds images in (the fewest that cover every image's folder)."""
        if self.config.allowed_roots is not None:
            return [os.path.normpath(r) for r in self.config.allowed_roots]
        return covering_folders(os.path.dirname(r.path) for r in self.collection())

    def collection(self) -> list[ImageRecord]:
        """Every indexed image, re-read only when the catalogue's generation moved."""
        generation = self.index.generation()
        with self._collection_mutex:
            if self._collection[0] != generation:
                self._collection = (generation, list(self.index.records("ok")))
            return self._collection[1]

    def duplicates(
        self, band: str | None, threshold: float | None, orientations: bool, exclude: str | None
    ) -> DuplicateScan:
        """The groups of copies (:meth:`Index.duplicates`), scanned once per generation of
        the index and settings: the pages of one scan come from memory. Images under
        ``exclude`` (the folder copies are moved into) are left out."""
        limit = resolve_threshold(band, threshold, self.index.band_thresholds())
        skip = os.path.normpath(exclude) if exclude and os.path.isabs(exclude) else ""
        if orientations:
            self.embedder()  # turned copies are embedded turned
        with self._scan_mutex:  # one scan at a time: the others wait and reuse it
            generation = self.index.generation()
            scan = self._scans.get((limit, orientations, skip))
            if scan is None or scan.generation != generation:
                groups = self.index.duplicates(
                    threshold=limit, orientations=orientations, exclude=[skip] if skip else []
                )
                scan = DuplicateScan(generation, limit, orientations, groups)
                self._scans = {
                    key: s for key, s in self._scans.items() if s.generation == generation
                }
                self._scans[(limit, orientations, skip)] = scan
            return scan

    def paths_of(self, image_ids: list[int]) -> list[str]:
        return [self.record(i).path for i in image_ids]

    def mark_not_duplicates(self, image_ids: list[int]) -> int:
        return self.index.mark_not_duplicates(self.paths_of(image_ids))

    def suggested_destination(self) -> str:
        roots = self.allowed_roots()
        return os.path.join(roots[0], SUGGESTED_FOLDER) if roots else ""

    def move_copies(
        self, keep: int, image_ids: list[int], destination: str, apply: bool
    ) -> tuple[MovePlan, str | None]:
        """Plan (and with ``apply``, make) the move of these copies, never of ``keep``;
        the destination must be an absolute folder under the allowed roots (else 403)."""
        if keep in image_ids:
            raise HTTPException(422, "the keeper is not moved: leave its id out of ids")
        self.record(keep)
        target = os.path.normpath(destination)
        if not os.path.isabs(destination):
            raise HTTPException(422, "destination must be an absolute folder")
        if not any(is_under(target, [root]) for root in self.allowed_roots()):
            raise HTTPException(403, f"{target} is outside the folders this server may write to")
        plan = self.index.plan_moves(self.paths_of(image_ids), target)
        if plan.problems:
            raise HTTPException(409, plan.problems[0])
        if not apply:
            return plan, None
        return plan, str(self.index.move(plan))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.upload_pool.shutdown(wait=False, cancel_futures=True)
        self.index.close()
