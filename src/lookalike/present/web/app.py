"""The FastAPI app: a REST API and the one-page UI over one shared, read-only Index.

Searches run on a thread pool sized to the machine; the model loads in the background
(``/health`` says when it is ready). The catalogue is read live and the vectors follow
writes made by other processes (``lookalike index``) on each search, so no restart is needed.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from lookalike import __version__
from lookalike.errors import (
    ImageError,
    IndexLockedError,
    IndexNotFoundError,
    LookalikeError,
    StoreError,
)
from lookalike.present.web.files import THUMBNAIL_SIZES, servable_path
from lookalike.present.web.jobs import Job, JobFinishedError, PathNotAllowedError
from lookalike.present.web.schemas import (
    AddRequest,
    ClassMatchOut,
    CollectionOut,
    CopyOut,
    DuplicatesOut,
    ErrorOut,
    ExplainOut,
    Features,
    GroupOut,
    Health,
    HitOut,
    ImageOut,
    JobOut,
    LayersOut,
    MemberOut,
    MoveOut,
    MoveRequest,
    SearchOut,
    Stats,
    TextSearchOut,
    VerdictOut,
    VerdictRequest,
)
from lookalike.present.web.security import HostGate, TokenGate, UploadLimit
from lookalike.present.web.service import MODEL_WAIT_S, ServerConfig, Service
from lookalike.search.filters import Filters
from lookalike.search.query import Hit
from lookalike.search.region import Box
from lookalike.store import ImageRecord

MAX_K = 200
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 422, not an overflow
MAX_SIDE = 2**31 - 1  # no image is wider; a larger filter would overflow SQLite
STATIC = importlib.resources.files("lookalike.present.web") / "static"

DESCRIPTION = """Search an image index by example.

* **By image**: `POST /api/search` with the image as multipart field `image`.
* **By indexed image**: `GET /api/images/{id}/similar`.
* **By region**: either of the above with `x`, `y`, `w`, `h` (pixels of the original image,
  after EXIF orientation): the region is cropped and searched for.
* `k` and the filters `folder` (path prefix), `taken_after` / `taken_before` (EXIF capture
  day, inclusive) and `min_width` / `min_height` apply to every search.

* **By words** (text search): `GET /api/search/text?q=cat+on+a+sofa`, `k` and the filters. With a
  built-in model the words are matched to ImageNet's 1,000 classes, whose probabilities were
  stored at indexing (no colours, counts or scenes: `matched` and `not_understood` say what
  was understood); an index of a CLIP model (`clip:DIR`) embeds them with its text encoder.
  `features.text_search` in `/health` says whether this index can be searched so.
* **Explain**: `GET /api/images/{id}/explain?result=ID` (or `POST /api/explain` with an
  upload) splits the score of a result over both images' feature-map cells (heatmaps and the
  strongest cell pairs); `GET /api/images/{id}/layers` shows what each stage of the network
  makes of an image.

* **Duplicates**: `GET /api/duplicates?band=edited&offset=0&limit=20` pages through the
  groups of copies (keeper first, with its reason; each copy's score, band and transform),
  `POST /api/duplicates/not-duplicates` records a verdict that later scans keep, and
  `POST /api/duplicates/move` moves the copies of a group (a dry run unless `apply`) under a
  folder of the allowed roots, with a journal that `lookalike dupes --undo` takes.
"""


# query parameters shared by the search routes
K = Annotated[int, Query(ge=1, le=MAX_K, description="results wanted")]
Folder = Annotated[str | None, Query(description="only results under this folder")]
After = Annotated[date | None, Query(description="taken on or after this day (EXIF)")]
Before = Annotated[date | None, Query(description="taken on or before this day (EXIF)")]
MinSide = Annotated[int, Query(ge=0, le=MAX_SIDE, description="pixels")]
ImageId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="an indexed image's id")]
Coord = Annotated[int | None, Query(ge=0, description="region, original pixels")]


def filter_params(
    folder: Folder = None,
    taken_after: After = None,
    taken_before: Before = None,
    min_width: MinSide = 0,
    min_height: MinSide = 0,
) -> Filters:
    return Filters(folder, taken_after, taken_before, min_width, min_height)


def region_params(x: Coord = None, y: Coord = None, w: Coord = None, h: Coord = None) -> Box | None:
    """The region to search for, if one is given (all four of x, y, w, h)."""
    if x is None and y is None and w is None and h is None:
        return None
    if x is None or y is None or w is None or h is None:
        raise HTTPException(422, "a region needs all of x, y, w and h")
    return Box(x, y, w, h)


FilterParams = Annotated[Filters, Depends(filter_params)]
RegionParams = Annotated[Box | None, Depends(region_params)]


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped (``\\u00e9``), as the CLI writes it: a file
    name that is not UTF-8 holds lone surrogates, which JSON can escape but UTF-8 cannot
    encode; a client's JSON parser gives back the same string either way."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_status(exc: LookalikeError) -> int:
    """The HTTP status of a library error."""
    if isinstance(exc, IndexLockedError | JobFinishedError):
        return 409
    if isinstance(exc, PathNotAllowedError):
        return 403
    if isinstance(exc, IndexNotFoundError):
        return 404
    if isinstance(exc, ImageError):
        return 415
    if isinstance(exc, StoreError):  # the index's files, not the request, are at fault
        return 503
    return 400


def create_app(config: ServerConfig) -> FastAPI:
    """The app over the index at ``config.index_dir`` (raises IndexNotFoundError if none)."""
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=service.load_model, name="load-model", daemon=True)
        loader.start()
        yield
        loader.join(MODEL_WAIT_S)  # PyTorch aborts the process if it exits mid-load
        service.close()

    app = FastAPI(
        default_response_class=AsciiJSONResponse,
        title="lookalike",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={
            400: {"model": ErrorOut},
            404: {"model": ErrorOut},
            413: {"model": ErrorOut},
            422: {"model": ErrorOut},
        },
    )
    app.state.service = service

    @app.exception_handler(LookalikeError)
    async def library_error(request: Request, exc: LookalikeError) -> AsciiJSONResponse:
        return AsciiJSONResponse({"error": str(exc)}, status_code=error_status(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> AsciiJSONResponse:
        return AsciiJSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> AsciiJSONResponse:
        return AsciiJSONResponse({"error": "internal server error"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> AsciiJSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        ]
        return AsciiJSONResponse({"error": "; ".join(problems)}, status_code=422)

    def urls(image_id: int) -> tuple[str, str]:
        """Where an indexed image's thumbnail and original are fetched."""
        return f"/api/images/{image_id}/thumbnail", f"/api/images/{image_id}/original"

    def hit_out(h: Hit) -> HitOut:
        thumbnail_url, original_url = urls(h.id)
        return HitOut(
            id=h.id,
            path=h.path,
            score=round(h.score, 6),
            width=h.width,
            height=h.height,
            thumbnail_url=thumbnail_url,
            original_url=original_url,
        )

    def search_out(hits: list[Hit], k: int, started: float) -> SearchOut:
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        return SearchOut(k=k, took_ms=took_ms, results=[hit_out(h) for h in hits])

    def image_out(r: ImageRecord) -> ImageOut:
        thumbnail_url, original_url = urls(r.id)
        return ImageOut(
            **dataclasses.asdict(r), thumbnail_url=thumbnail_url, original_url=original_url
        )

    def features() -> Features:
        return Features(text_search=service.text_search is not None)

    @app.get("/health", tags=["status"])
    async def health() -> Health:
        """Whether the model is loaded; cheap enough to poll."""
        status = (
            "loading" if not service.ready.is_set() else "error" if service.load_error else "ready"
        )
        return Health(
            status=status,  # type: ignore[arg-type]
            error=service.load_error,
            images=await run_in_threadpool(len, service.index),
            version=__version__,
            features=features(),
        )

    @app.get("/api/stats", tags=["status"])
    async def stats() -> Stats:
        """What the index holds."""
        info = await run_in_threadpool(service.index.info)
        return Stats(index=info, thumbnail_sizes=list(THUMBNAIL_SIZES), features=features())

    # search

    @app.post("/api/search", tags=["search"], responses={415: {"model": ErrorOut}})
    async def search_upload(
        image: Annotated[UploadFile, File(description="the query image")],
        filters: FilterParams,
        box: RegionParams,
        k: K = 20,
    ) -> SearchOut:
        """Images most like an uploaded one (or like a region of it). 413 for an image that
        would decode to more than the server's upload limit of pixels."""
        started = time.perf_counter()
        hits = await service.run(
            service.search_upload, image.file, box, k, filters, pool=service.upload_pool
        )
        return search_out(hits, k, started)

    @app.get("/api/images/{image_id:int}/similar", tags=["search"])
    async def search_indexed(
        image_id: ImageId,
        filters: FilterParams,
        box: RegionParams,
        k: K = 20,
        exclude_self: Annotated[bool, Query(description="leave the image itself out")] = False,
    ) -> SearchOut:
        """Images most like an indexed one (its stored vector), or like a region of it."""
        started = time.perf_counter()
        record = await run_in_threadpool(service.record, image_id)
        source = servable_path(record) if box else record.path
        if source is None:
            raise HTTPException(404, f"image {image_id} is no longer readable")
        hits = await service.run(service.search, source, box, k, filters, exclude_self and not box)
        return search_out(hits, k, started)

    @app.get("/api/search/text", tags=["search"], responses={400: {"model": ErrorOut}})
    async def search_text(
        q: Annotated[str, Query(min_length=1, max_length=500, description="words to search by")],
        filters: FilterParams,
        k: K = 20,
    ) -> TextSearchOut:
        """Images that show what the words name (see the API description for what they can
        name). 400 where the index's model cannot search by words."""
        started = time.perf_counter()
        result = await service.run(service.search_text, q, k, filters)
        matched = result.matched
        return TextSearchOut(
            **search_out(result.hits, k, started).model_dump(),
            query=q,
            kind="clip" if service.text_search == "clip" else "classes",
            matched=[
                ClassMatchOut(
                    class_id=m.class_id,
                    name=m.name,
                    weight=round(m.weight, 4),
                    words=m.words,
                    how=m.how,
                )
                for m in (matched.matches if matched else ())
            ],
            not_understood=list(matched.ignored) if matched else [],
        )

    # the collection and its files

    @app.get("/api/images", tags=["images"])
    async def list_images(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        folder: Folder = None,
    ) -> CollectionOut:
        """The indexed images in the order they were added."""
        records = await run_in_threadpool(service.collection)
        if folder:
            keep = Filters(folder=folder)
            records = [r for r in records if keep.accepts(r)]
        return CollectionOut(
            total=len(records),
            offset=offset,
            items=[image_out(r) for r in records[offset : offset + limit]],
        )

    @app.get("/api/images/{image_id:int}", tags=["images"])
    async def get_image(image_id: ImageId) -> ImageOut:
        return image_out(await run_in_threadpool(service.record, image_id))

    @app.get(
        "/api/images/{image_id:int}/thumbnail",
        tags=["images"],
        response_class=FileResponse,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(
        image_id: ImageId,
        size: Annotated[
            int, Query(description=f"longer side, pixels: one of {THUMBNAIL_SIZES}")
        ] = 256,
    ) -> FileResponse:
        """A JPEG thumbnail, made once and cached beside the index."""
        if size not in THUMBNAIL_SIZES:
            raise HTTPException(422, f"size: must be one of {', '.join(map(str, THUMBNAIL_SIZES))}")
        source = servable_path(service.record(image_id))
        if source is None:
            raise HTTPException(404, f"image {image_id} is no longer readable")
        try:
            path = service.thumbnails.get(image_id, source, size)
        except (ImageError, OSError) as exc:
            raise HTTPException(404, f"image {image_id} is no longer readable") from exc
        return FileResponse(
            path, media_type="image/jpeg", headers={"cache-control": "private, max-age=300"}
        )

    @app.get("/api/images/{image_id:int}/original", tags=["images"], response_class=FileResponse)
    def original(image_id: ImageId) -> FileResponse:
        """The indexed file itself (only files that are in the index, looked up by id)."""
        source = servable_path(service.record(image_id))
        if source is None:
            raise HTTPException(404, f"image {image_id} is no longer readable")
        return FileResponse(source, content_disposition_type="inline")

    # adding to the index

    def job_out(job: Job) -> JobOut:
        report = job.report
        return JobOut(
            id=job.id,
            status=job.status,  # type: ignore[arg-type]
            paths=job.paths,
            done=job.done,
            total=job.total,
            phase=job.phase,  # type: ignore[arg-type]
            error=job.error,
            **(
                {
                    "added": report.added,
                    "updated": report.updated,
                    "removed": report.removed,
                    "unchanged": report.unchanged,
                    "skipped": len(report.skipped),
                    "adapted": report.adaptation.images if report.adaptation else None,
                }
                if report
                else {}
            ),
        )

    @app.post(
        "/api/jobs",
        tags=["index"],
        status_code=202,
        responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def add_paths(request: AddRequest) -> JobOut:
        """Index files or folders in the background; poll ``/api/jobs/{id}`` for progress.
        403 for a path outside the folders the server may add to (``--allow-root``; by
        default the folders already indexed); 409 while another writer (a job, or
        ``lookalike index``) holds the index."""
        return job_out(service.jobs.start(request.paths, service.allowed_roots()))

    @app.get("/api/jobs/{job_id}", tags=["index"])
    def get_job(job_id: str) -> JobOut:
        job = service.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job_out(job)

    @app.delete(
        "/api/jobs/{job_id}", tags=["index"], status_code=202, responses={409: {"model": ErrorOut}}
    )
    def cancel_job(job_id: str) -> JobOut:
        """Stop a running job at its next batch: what it committed stays, the index is
        unlocked, and its status goes from "cancelling" to "cancelled". 409 once finished."""
        job = service.jobs.cancel(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job_out(job)

    # duplicates

    def member_out(r: ImageRecord) -> MemberOut:
        thumbnail_url, original_url = urls(r.id)
        return MemberOut(
            id=r.id,
            path=r.path,
            width=r.width,
            height=r.height,
            size=r.size,
            format=r.format,
            taken_at=r.taken_at,
            thumbnail_url=thumbnail_url,
            original_url=original_url,
        )

    @app.get("/api/duplicates", tags=["duplicates"])
    async def duplicates(
        band: Annotated[
            Literal["identical", "edited", "similar"] | None,
            Query(description="group copies of this band or closer (default: edited)"),
        ] = None,
        threshold: Annotated[float | None, Query(gt=0, le=1, description="or this score")] = None,
        orientations: Annotated[bool, Query(description="find turned copies too")] = False,
        exclude: Annotated[
            str | None, Query(description="leave out the images under this absolute folder")
        ] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> DuplicatesOut:
        """Groups of copies, largest first, a page at a time (the scan is cached until the
        index changes, so paging through thousands of groups stays fast)."""
        started = time.perf_counter()
        scan = await service.run(service.duplicates, band, threshold, orientations, exclude)
        groups = [
            GroupOut(
                key=g.key,
                keep=member_out(g.keep),
                reason=g.reason,
                duplicates=[
                    CopyOut(
                        **member_out(d.record).model_dump(),
                        score=d.score,
                        band=d.band,
                        transform=d.transform,
                    )
                    for d in g.duplicates
                ],
            )
            for g in scan.groups[offset : offset + limit]
        ]
        return DuplicatesOut(
            total=len(scan.groups),
            copies=sum(len(g.duplicates) for g in scan.groups),
            offset=offset,
            threshold=scan.threshold,
            took_ms=round((time.perf_counter() - started) * 1000, 1),
            destination=await run_in_threadpool(service.suggested_destination),
            groups=groups,
        )

    @app.post("/api/duplicates/not-duplicates", tags=["duplicates"])
    def not_duplicates(request: VerdictRequest) -> VerdictOut:
        """Record that no two of these images are duplicates; later scans keep them apart."""
        return VerdictOut(recorded=service.mark_not_duplicates(request.ids))

    @app.post(
        "/api/duplicates/move",
        tags=["duplicates"],
        responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def move_duplicates(request: MoveRequest) -> MoveOut:
        """Move copies (never the keeper) under ``destination``, keeping their relative
        paths; nothing is deleted or overwritten, and the index follows. 403 for a
        destination outside the allowed roots."""
        plan, journal = service.move_copies(
            request.keep, request.ids, request.destination, request.apply
        )
        return MoveOut(
            moves=[{"from": m.source, "to": m.target} for m in plan.moves],
            applied=journal is not None,
            journal=journal,
        )

    # explaining

    def readable(*image_ids: int) -> None:
        """A 404 unless every image is indexed and its file may be served."""
        for image_id in image_ids:
            if servable_path(service.record(image_id)) is None:
                raise HTTPException(404, f"image {image_id} is no longer readable")

    @app.get("/api/images/{image_id:int}/explain", tags=["explain"])
    async def explain_indexed(
        image_id: ImageId,
        box: RegionParams,
        result: Annotated[int, Query(ge=0, le=MAX_ID, description="the result's id")],
    ) -> ExplainOut:
        """Why ``result`` matched this indexed image (or a region of it): the score split
        over the two images' feature-map cells, as heatmaps, and the strongest cell pairs."""
        await run_in_threadpool(readable, image_id, result)
        return ExplainOut.model_validate(await service.run(service.explain, image_id, result, box))

    @app.post("/api/explain", tags=["explain"], responses={415: {"model": ErrorOut}})
    async def explain_upload(
        image: Annotated[UploadFile, File(description="the query image")],
        box: RegionParams,
        result: Annotated[int, Query(ge=0, le=MAX_ID, description="the result's id")],
    ) -> ExplainOut:
        """Why ``result`` matched an uploaded image (or a region of it)."""
        await run_in_threadpool(readable, result)
        data = await image.read()
        explained = await service.run(service.explain, data, result, box, pool=service.upload_pool)
        return ExplainOut.model_validate(explained)

    @app.get("/api/images/{image_id:int}/layers", tags=["explain"])
    async def layers(
        image_id: ImageId,
        channels: Annotated[int, Query(ge=1, le=16, description="maps per stage")] = 4,
    ) -> LayersOut:
        """What the network sees in an indexed image: the first convolution's filters and
        each stage's strongest feature maps, with their shapes."""
        source = servable_path(await run_in_threadpool(service.record, image_id))
        if source is None:
            raise HTTPException(404, f"image {image_id} is no longer readable")
        return LayersOut.model_validate(await service.run(service.layers, source, channels))

    # the page

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    app.add_middleware(UploadLimit, max_bytes=config.max_upload_bytes)
    if config.token:
        app.add_middleware(TokenGate, token=config.token)
    # Outside the token gate: preflight requests carry no token and must still be answered.
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # Outermost (added last): a request for another host name meets nothing else.
    app.add_middleware(HostGate, allowed=config.allowed_hosts)
    return app
