"""Stage 2: file entries -> vectors and metadata, built from a spec that can travel."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.decode.image import DecodedImage, ImageMeta, decode_image
from lookalike.embed.classes import TopClasses
from lookalike.embed.interface import ClassifyingEmbedder, Embedder, LocalFeatureEmbedder
from lookalike.embed.local_features import LocalFeatures
from lookalike.errors import ImageError, ModelMismatchError
from lookalike.files.walk import FileEntry


@dataclass(frozen=True)
class EmbedderSpec:
    """What it takes to build the same embedder anywhere: plain strings, so it pickles.

    ``model_id``, when given, is the vector space the embedder must make (an index's): a
    build that makes other vectors is an error rather than a silently mixed index.
    """

    model: str  # a registered name or a model directory
    weights: str | None = None
    runtime: str | None = None
    model_id: str | None = None

    @classmethod
    def for_index(cls, model: str, model_id: str, weights: str | None = None) -> EmbedderSpec:
        """The spec that makes more vectors of an index's ``model_id``, whatever the default
        runtime now is (an int8 index needs the int8 network again)."""
        from lookalike.embed.registry import runtime_for

        return cls(model, weights, runtime_for(model_id), model_id)

    def build(self) -> Embedder:
        from lookalike.embed.registry import create_embedder

        embedder = create_embedder(self.model, self.weights, runtime=self.runtime)
        if self.model_id is not None and embedder.model_id != self.model_id:
            raise ModelMismatchError(
                f"index vectors were made by {self.model_id}, but model {self.model!r} now "
                f"makes {embedder.model_id}; re-create the index"
            )
        return embedder


@dataclass(frozen=True)
class EmbeddedFile:
    """The outcome for one file: its vector and metadata, or the reason it was skipped."""

    entry: FileEntry
    meta: ImageMeta | None
    vector: np.ndarray | None  # float32 (dim,), L2-normalised
    reason: str | None
    classes: TopClasses | None = None  # its top ImageNet classes, when the model has them
    local_features: LocalFeatures | None = None  # for spatial re-ranking, when the model has them


Decoded = DecodedImage | str  # the image, or the one-line reason it cannot be used


class Mapper:
    """Decodes and embeds batches of files. Pickling keeps only the spec: a copy sent to
    another process builds its own model there, on first use."""

    def __init__(self, spec: EmbedderSpec, embedder: Embedder | None = None) -> None:
        self.spec = spec
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self.spec.build()
        return self._embedder

    @property
    def loaded(self) -> Embedder | None:
        """The model if this copy has built it (so the caller can keep it), else None."""
        return self._embedder

    def prepare(self) -> None:
        """Build the model now, before threads of a runner share this mapper."""
        self._embedder = self.embedder

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "_embedder": None}

    def decode(self, entry: FileEntry) -> Decoded:
        """The decoded image, shrunk to what the model needs, or why it cannot be used."""
        try:
            return decode_image(entry.path, max_side=self.embedder.image_size)
        except ImageError as exc:
            return str(exc)

    def embed(self, batch: Sequence[tuple[FileEntry, Decoded]]) -> list[EmbeddedFile]:
        """Embed the decoded images of a batch together; failures keep their reasons."""
        good = [d.image for _, d in batch if isinstance(d, DecodedImage)]
        embedder = self.embedder
        found: list[TopClasses] | None = None
        local: list[LocalFeatures] | None = None
        if isinstance(embedder, LocalFeatureEmbedder) and embedder.has_local_features:
            matrix, found, local = embedder.embed_with_local_features(good)
        elif isinstance(embedder, ClassifyingEmbedder) and embedder.has_classes:
            matrix, found = embedder.embed_with_classes(good)
        else:
            matrix = embedder.embed(good)
        vectors = iter(matrix)
        none: list[None] = [None] * len(good)
        classes: Iterator[TopClasses | None] = iter(found or none)
        locals_: Iterator[LocalFeatures | None] = iter(local or none)
        return [
            EmbeddedFile(entry, d.meta, next(vectors), None, next(classes), next(locals_))
            if isinstance(d, DecodedImage)
            else EmbeddedFile(entry, None, None, d)
            for entry, d in batch
        ]

    def __call__(self, entries: Sequence[FileEntry]) -> list[EmbeddedFile]:
        """One batch, decoded here then embedded: the unit of work a remote runner ships."""
        return self.embed([(entry, self.decode(entry)) for entry in entries])
