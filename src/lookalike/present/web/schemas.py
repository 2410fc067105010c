"""The JSON bodies of the REST API; they make its OpenAPI schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from lookalike.index import IndexInfo
from lookalike.store import ImageRecord


class Features(BaseModel):
    text_search: bool = Field(
        default=False, description="GET /api/search/text works for this index's model"
    )
    duplicates: bool = Field(default=True, description="GET /api/duplicates works")
    explain: bool = True
    region_search: bool = True
    add_jobs: bool = True


class Health(BaseModel):
    status: Literal["loading", "ready", "error"] = Field(
        description="loading while the model loads; searches wait for it"
    )
    error: str | None = None
    images: int
    version: str
    features: Features


class HitOut(BaseModel):
    id: int
    path: str
    score: float = Field(description="cosine similarity, 1.0 = same image")
    width: int | None
    height: int | None
    thumbnail_url: str
    original_url: str


class SearchOut(BaseModel):
    k: int
    took_ms: float
    results: list[HitOut]


class ClassMatchOut(BaseModel):
    class_id: int = Field(description="ImageNet class index, 0-999")
    name: str
    weight: float = Field(description="in (0, 1]: how much an image's probability of it counts")
    words: str = Field(description="the query's words that matched it")
    how: str = Field(description='"name", "a kind of <concept>" or "similar (cosine c)"')


class TextSearchOut(SearchOut):
    query: str
    kind: Literal["classes", "clip"] = Field(
        description="classes: through ImageNet classes stored at indexing (score: the "
        "probability they give the words); clip: a CLIP text encoder (score: cosine)"
    )
    matched: list[ClassMatchOut] = Field(description="the classes the words matched (classes)")
    not_understood: list[str] = Field(description="words no class stands for (classes)")


@dataclass(frozen=True, kw_only=True)
class ImageOut(ImageRecord):
    """An indexed image: its catalogue record, and where to fetch its pixels."""

    thumbnail_url: str
    original_url: str


class CollectionOut(BaseModel):
    total: int
    offset: int
    items: list[ImageOut]


class Stats(BaseModel):
    index: IndexInfo
    thumbnail_sizes: list[int]
    features: Features


class AddRequest(BaseModel):
    paths: list[str] = Field(description="absolute files or folders on the server's disk")


class JobOut(BaseModel):
    id: str
    status: Literal["running", "cancelling", "done", "failed", "cancelled"] = Field(
        description="cancelling: asked to stop (DELETE), still finishing its current batch"
    )
    paths: list[str]
    done: int
    total: int | None
    phase: Literal["walking", "embedding", "classifying", "adapting"] | None = Field(
        None,
        description="what done / total count now: files embedded, files classified, or "
        "the sampled images the index adapts to; null once the job has finished",
    )
    added: int | None = None
    updated: int | None = None
    removed: int | None = None
    unchanged: int | None = None
    skipped: int | None = None
    adapted: int | None = Field(
        None, description="the index then adapted to its images: how many it learned from"
    )
    error: str | None = None


class ExplainSide(BaseModel):
    label: str = Field(description="the image's path, or 'upload'")
    id: int | None
    width: int = Field(description="the whole image's pixels, after EXIF orientation")
    height: int
    region: list[int] | None = Field(description="x, y, w, h of a region query")
    grid: list[int] = Field(description="rows, cols of the final feature map")
    heat: list[list[float]] = Field(description="rows x cols: each cell's share of the score")
    cells: list[list[list[float]]] = Field(
        description="rows x cols x (left, top, right, bottom): each cell in the image's pixels"
    )


class CellPairOut(BaseModel):
    query_cell: list[int] = Field(description="row, col")
    result_cell: list[int]
    share: float = Field(description="this pair's term of the score")


class ExplainOut(BaseModel):
    score: float = Field(description="the index's score for the pair, as search ranks it")
    total: float = Field(description="the sum of the heatmaps (float network)")
    model_id: str
    notes: list[str]
    query: ExplainSide
    result: ExplainSide
    pairs: list[CellPairOut] = Field(description="the cell pairs that add most, strongest first")


class StageOut(BaseModel):
    name: str
    kind: str
    shape: list[int] = Field(description="channels, height, width")
    stride: int
    channels: list[int] = Field(description="the strongest channels, shown in maps")
    maps: list[list[list[float]]]


class LayersOut(BaseModel):
    model_id: str
    input: str = Field(description="the network's input image, a PNG data URL")
    filters: list[list[list[list[float]]]] = Field(description="first convolution (n, 3, k, k)")
    filter_stride: int
    stages: list[StageOut]


class MemberOut(BaseModel):
    """An image of a duplicate group."""

    id: int
    path: str
    width: int | None
    height: int | None
    size: int = Field(description="bytes")
    format: str | None
    taken_at: str | None
    thumbnail_url: str
    original_url: str


class CopyOut(MemberOut):
    score: float = Field(description="cosine similarity with the keeper")
    band: Literal["identical", "edited", "similar"]
    transform: str | None = Field(description="what turns the keeper into this copy, if turned")


class GroupOut(BaseModel):
    key: str = Field(description="names the group by its members' ids")
    keep: MemberOut
    reason: str = Field(description="why this copy is the suggested keeper")
    duplicates: list[CopyOut]


class DuplicatesOut(BaseModel):
    total: int = Field(description="groups in all; this page has `groups`")
    copies: int = Field(description="copies beside their keepers, over all groups")
    offset: int
    threshold: float
    took_ms: float
    destination: str = Field(description="a suggested folder to move copies into")
    groups: list[GroupOut]


class VerdictRequest(BaseModel):
    ids: list[int] = Field(min_length=2, max_length=10_000, description="not duplicates")


class VerdictOut(BaseModel):
    recorded: int


class MoveRequest(BaseModel):
    keep: int = Field(description="the copy that stays")
    ids: list[int] = Field(min_length=1, max_length=10_000, description="the copies to move")
    destination: str = Field(description="an absolute folder, under the allowed roots")
    apply: bool = Field(default=False, description="false: only the plan (a dry run)")


class MoveOut(BaseModel):
    moves: list[dict[str, str]] = Field(description='{"from": path, "to": path} each')
    applied: bool
    journal: str | None = Field(description="what `lookalike dupes --undo` takes")


class ErrorOut(BaseModel):
    error: str
