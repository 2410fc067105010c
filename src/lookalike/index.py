"""``Index``: the library API over an index directory. The CLI and web server are shells over it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from lookalike.embed.pipeline import EmbeddedFile, default_workers, embed_files
from lookalike.errors import ImageError, LookalikeError, ModelMismatchError
from lookalike.files.walk import FileEntry, is_under, walk_images
from lookalike.search.query import Hit, Query, SearchResult, query_image, query_path
from lookalike.store import ImageRecord, Store
from lookalike.store.catalogue import Upsert
from lookalike.store.whitening import learn_whitening

if TYPE_CHECKING:  # PyTorch loads with the first model, not with the index: `info`,
    # `remove`, unchanged re-runs and the web server start without it.
    from lookalike.embed.interface import Embedder

Progress = Callable[[int, int], None]  # (files done, files to do)
Where = Callable[[ImageRecord], bool]  # a search filter: keep the images it accepts


@dataclass
class AddReport:
    """What one ``Index.add`` did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass(frozen=True)
class IndexInfo:
    directory: str
    model: str
    model_id: str
    dim: int
    images: int
    skipped: int
    disk_bytes: int
    whitening_dim: int | None = None  # searched in this many whitened dimensions, if learned


class Index:
    """An image index: add folders, search by example, remove files.

    >>> with Index.create("idx") as index:          # doctest: +SKIP
    ...     index.add(["~/Pictures"])
    ...     hits = index.search("query.jpg", k=5)
    """

    def __init__(
        self, store: Store, embedder: Embedder | None = None, weights: str | Path | None = None
    ) -> None:
        self.store = store
        self._embedder = embedder
        self._weights = weights

    # opening

    @classmethod
    def create(
        cls, directory: str | Path, model: str = "mobilenet_v2", weights: str | Path | None = None
    ) -> Index:
        """A new, empty index at ``directory`` whose vectors ``model`` will make."""
        from lookalike.embed.registry import canonical_model_name, create_embedder

        model = canonical_model_name(model)
        embedder = create_embedder(model, weights=weights)
        store = Store.create(Path(directory), model, embedder.model_id, embedder.dim)
        return cls(store, embedder, weights)

    @classmethod
    def open(
        cls, directory: str | Path, model: str | None = None, weights: str | Path | None = None
    ) -> Index:
        """An existing index; ``model``, if given, must be the one that made it."""
        store = Store.open(Path(directory))
        if model is not None:
            from lookalike.embed.registry import canonical_model_name

            model = canonical_model_name(model)  # a model directory: its absolute path
            if model != store.model_name:
                store.close()
                raise ModelMismatchError(
                    f"index {directory} was made with model {store.model_name!r}, "
                    f"not {model!r}; use another --index for another model"
                )
        return cls(store, weights=weights)

    @classmethod
    def open_or_create(
        cls,
        directory: str | Path,
        model: str | None = None,
        weights: str | Path | None = None,
        default_model: str = "mobilenet_v2",
    ) -> Index:
        """Open the index at ``directory``, or create it with ``model or default_model``."""
        if Store.exists(Path(directory)):
            return cls.open(directory, model, weights)
        return cls.create(directory, model or default_model, weights)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return self.store.count()

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def embedder(self) -> Embedder:
        """The index's model, loaded on first use and checked against the stored vectors."""
        if self._embedder is None:
            from lookalike.embed.registry import create_embedder, runtime_for

            embedder = create_embedder(
                self.store.model_name, self._weights, runtime=runtime_for(self.store.model_id)
            )
            if embedder.model_id != self.store.model_id:
                raise ModelMismatchError(
                    f"index vectors were made by {self.store.model_id}, but model "
                    f"{self.store.model_name!r} now makes {embedder.model_id}; re-create the index"
                )
            self._embedder = embedder
        return self._embedder

    # writing

    def add(
        self,
        paths: Iterable[str | Path],
        progress: Progress | None = None,
        batch_size: int = 32,
        workers: int | None = None,
    ) -> AddReport:
        """Index the images under ``paths``: new and changed files are embedded, unchanged
        ones (same size and mtime) only stat'ed, vanished ones removed. Bad files are
        recorded as skipped with a reason. Each batch is committed on its own, so an
        interrupted run keeps its work and the next run resumes."""
        report = AddReport()
        roots = [os.path.abspath(os.fspath(p)) for p in paths]
        unlisted: list[str] = []

        def walk_error(path: str, reason: str) -> None:
            report.skipped.append((path, reason))
            unlisted.append(path)

        with self.store.writing():
            known = self.store.stat_map()
            seen: set[str] = set()
            todo: list[FileEntry] = []
            for entry in walk_images(roots, on_error=walk_error):
                seen.add(entry.path)
                old = known.get(entry.path)
                if old and (old[1], old[2]) == (entry.size, entry.mtime_ns):
                    report.unchanged += 1
                else:
                    todo.append(entry)
            done = 0
            if progress:
                progress(0, len(todo))
            n_workers = default_workers(len(todo)) if workers is None else workers
            # An unchanged folder never loads the model: `todo` is empty, nothing to embed.
            batches = embed_files(todo, self.embedder, batch_size, n_workers) if todo else []
            for batch in batches:
                self.store.write([_upsert(item) for item in batch])
                for item in batch:
                    if item.reason:
                        report.skipped.append((item.entry.path, item.reason))
                    elif item.entry.path in known:
                        report.updated += 1
                    else:
                        report.added += 1
                done += len(batch)
                if progress:
                    progress(done, len(todo))
            vanished = [
                p
                for p in known
                if p not in seen and is_under(p, roots) and not is_under(p, unlisted)
            ]
            if vanished:
                self.store.write([], vanished)
                report.removed = len(vanished)
        return report

    def learn_whitening(self, dims: int | None = None) -> int:
        """Learn PCA-whitening from this index's own vectors and use it from now on, for the
        stored vectors and for queries (``dims`` keeps the strongest directions). Returns the
        number of vectors it was learned from. Files added later are whitened the same way."""
        with self.store.writing():
            vectors = self.store.all_vectors()
            if len(vectors) < 2:
                raise LookalikeError("whitening needs an index of at least 2 images")
            self.store.set_whitening(learn_whitening(vectors, dims))
        return len(vectors)

    def drop_whitening(self) -> None:
        """Search with the raw vectors again."""
        with self.store.writing():
            self.store.set_whitening(None)

    def remove(self, paths: Iterable[str | Path]) -> int:
        """Drop files (or everything under folders) from the index; returns how many."""
        roots = [os.path.abspath(os.fspath(p)) for p in paths]
        with self.store.writing():
            gone = [p for p in self.store.stat_map() if is_under(p, roots)]
            if gone:
                self.store.write([], gone)
        return len(gone)

    # reading

    def search(
        self, query: Query, k: int = 10, exclude_self: bool = False, where: Where | None = None
    ) -> list[Hit]:
        """The ``k`` most alike indexed images, best first. Raises ImageError for a bad query."""
        result = self.search_many([query], k, exclude_self, where)[0]
        if result.error:
            raise ImageError(result.error)
        return result.hits

    def search_many(
        self,
        queries: Sequence[Query],
        k: int = 10,
        exclude_self: bool = False,
        where: Where | None = None,
    ) -> list[SearchResult]:
        """Answer many queries in one batch; a bad query gets an error, not an exception.

        ``where``, if given, keeps only the images whose record it accepts (a folder, a date
        range, a minimum size): the vector index is searched for more than ``k`` and the
        results filtered, widening the search until ``k`` pass or every image was seen."""
        vectors: list[np.ndarray | None] = []
        self_ids: list[int | None] = []
        errors: list[str | None] = []
        to_embed: list[tuple[int, Query]] = []
        for i, query in enumerate(queries):
            record = self._indexed_record(query)
            stored = self.store.vector(record.id) if record and _unchanged(record) else None
            vectors.append(stored)
            self_ids.append(record.id if record else None)
            errors.append(None)
            if stored is None:
                to_embed.append((i, query))
        images = []
        for i, query in to_embed:
            try:
                images.append((i, query_image(query, self.embedder.image_size)))
            except ImageError as exc:
                errors[i] = str(exc)
        if images:
            for (i, _), vector in zip(
                images, self.embedder.embed([im for _, im in images]), strict=True
            ):
                vectors[i] = vector
        answered = [i for i, v in enumerate(vectors) if v is not None]
        hits_per_query: dict[int, list[Hit]] = {}
        if answered:
            matrix = np.stack([vectors[i] for i in answered])  # type: ignore[misc]
            ranked = self._ranked(matrix, k + 1 if exclude_self else k, where)
            for i, ranking in zip(answered, ranked, strict=True):
                hits = [_hit(record, score) for record, score in ranking]
                if exclude_self:
                    hits = [h for h in hits if h.id != self_ids[i]]
                hits_per_query[i] = hits[:k]
        return [
            SearchResult(q, hits_per_query.get(i, []), errors[i]) for i, q in enumerate(queries)
        ]

    def _ranked(
        self, matrix: np.ndarray, k: int, where: Where | None
    ) -> list[list[tuple[ImageRecord, float]]]:
        """Top ``k`` (record, score) per row of float32 (n, dim) among records ``where`` keeps."""
        if where is None:
            return self.store.search(matrix, k)
        total = self.store.count()
        fetch = 4 * k  # most filters keep a good share; a narrow one widens below
        while True:
            ranked = [
                [(r, s) for r, s in row if where(r)] for row in self.store.search(matrix, fetch)
            ]
            if fetch >= total or all(len(row) >= k for row in ranked):
                return [row[:k] for row in ranked]
            fetch = min(total, fetch * 4)

    def info(self) -> IndexInfo:
        return IndexInfo(
            directory=str(self.directory),
            model=self.store.model_name,
            model_id=self.store.model_id,
            dim=self.store.dim,
            images=len(self),
            skipped=self.store.catalogue.count("skipped"),
            disk_bytes=self.store.disk_bytes(),
            whitening_dim=whitening.dim
            if (whitening := self.store.catalogue.whitening())
            else None,
        )

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file the index holds as skipped."""
        return [(r.path, r.reason or "") for r in self.store.iter_records("skipped")]

    def _indexed_record(self, query: Query) -> ImageRecord | None:
        path = query_path(query)
        record = self.store.record_by_path(path) if path else None
        return record if record and record.status == "ok" else None


def _upsert(item: EmbeddedFile) -> Upsert:
    entry, d = item.entry, item.decoded
    if d is None:
        return Upsert(entry.path, entry.size, entry.mtime_ns, None, reason=item.reason)
    return Upsert(
        entry.path,
        entry.size,
        entry.mtime_ns,
        item.vector,
        None,
        d.width,
        d.height,
        d.format,
        d.taken_at,
        d.orientation,
    )


def _hit(record: ImageRecord, score: float) -> Hit:
    return Hit(record.path, score, record.id, record.width, record.height)


def _unchanged(record: ImageRecord) -> bool:
    try:
        st = os.stat(record.path)
    except OSError:
        return True  # vanished since indexing: its stored vector is still what was indexed
    return (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns)
