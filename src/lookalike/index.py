"""``Index``: the library API over one store. The CLI and web server are shells over it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lookalike.config import DEFAULT_MODEL
from lookalike.dupes import (
    Band,
    DuplicateGroup,
    KeeperRules,
    MovePlan,
    UndoReport,
    apply_moves,
    find_duplicates,
    plan_moves,
    thresholds_for,
    undo_moves,
)
from lookalike.embed.interface import Embedder
from lookalike.errors import ImageError, LookalikeError, ModelMismatchError
from lookalike.files.walk import is_under
from lookalike.pipeline import (
    AddReport,
    EmbedderSpec,
    LocalRunner,
    Mapper,
    Progress,
    Runner,
    commit_classes,
)
from lookalike.pipeline import commit as commit_batches
from lookalike.pipeline.plan import absolute_roots, plan_add
from lookalike.search.filters import Filters
from lookalike.search.orientation import rank_oriented
from lookalike.search.query import Hit, Query, SearchResult, TextQuery
from lookalike.search.ranking import rank
from lookalike.store import (
    ImageRecord,
    Store,
    create_store,
    open_store,
    prepare_location,
    store_exists,
)
from lookalike.store.whitening import ADAPTED, Whitening, learn_centring, learn_whitening

__all__ = ["AddReport", "Index", "IndexInfo", "Progress"]


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
    centred_only: bool = False  # that "whitening" only centres (``learn_whitening(centre_only)``)
    whitening_kind: str | None = None  # how it was learned: pca, centre, adapted (Whitening.kind)
    store: str = ""  # the kind of store, e.g. "sqlite+faiss"
    vector_index: str = "flat"  # what searches run on, e.g. "ivf2048-sq8 nprobe=16"
    recall_at_10: float | None = None  # measured against exact search (info --recall)
    compact: bool = False  # vectors kept small, about 1 KB an image (index --compact)
    adapts: bool = False  # Index.add adapts it to its images as it grows
    model_whitened: bool = False  # its (trained) model ends with a learned whitening


class Index:
    """An image index: add folders, search by example, remove files.

    >>> with Index.create("idx") as index:          # doctest: +SKIP
    ...     index.add(["~/Pictures"])
    ...     hits = index.search("query.jpg", k=5)

    PyTorch and the model load with the first embedding, not with the index: ``info``,
    ``remove`` and unchanged re-runs start without them.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder | Callable[[], Embedder] | None = None,
        weights: str | Path | None = None,
    ) -> None:
        self.store = store
        self._embedder = embedder if isinstance(embedder, Embedder) else None
        self._lend = None if isinstance(embedder, Embedder) else embedder
        self._weights = _str(weights)

    # opening

    @classmethod
    def create(
        cls,
        directory: str | Path,
        model: str = DEFAULT_MODEL,
        weights: str | Path | None = None,
        compact: bool = False,
    ) -> Index:
        """A new, empty index at ``directory`` whose vectors ``model`` will make; ``compact``
        keeps them small (about 1 KB an image; recall@10 0.85 at a million, measured)."""
        from lookalike.embed.registry import canonical_model_name

        prepare_location(directory)  # a bad folder fails before the model loads
        spec = EmbedderSpec(canonical_model_name(model), _str(weights))
        embedder = spec.build()
        store = create_store(directory, spec.model, embedder.model_id, embedder.dim, compact)
        return cls(store, embedder, weights)

    @classmethod
    def open(
        cls,
        directory: str | Path,
        model: str | None = None,
        weights: str | Path | None = None,
        embedder: Embedder | Callable[[], Embedder] | None = None,
    ) -> Index:
        """An existing index; ``model``, if given, must be the one that made it. ``embedder``
        lends a model already loaded, or a function that returns it when first needed (it
        must make the index's vectors)."""
        store = open_store(directory)
        if model is not None:
            from lookalike.embed.registry import canonical_model_name

            model = canonical_model_name(model)  # a model directory: its absolute path
            if model != store.model_name:
                store.close()
                raise ModelMismatchError(
                    f"index {directory} was made with model {store.model_name!r}, "
                    f"not {model!r}; use another --index for another model"
                )
        return cls(store, embedder, weights)

    @classmethod
    def open_or_create(
        cls,
        directory: str | Path,
        model: str | None = None,
        weights: str | Path | None = None,
        default_model: str = DEFAULT_MODEL,
        compact: bool = False,
    ) -> Index:
        """Open the index at ``directory``, or create it with ``model or default_model``
        (``compact``: see :meth:`create`; an existing index must already be compact)."""
        if store_exists(directory):
            index = cls.open(directory, model, weights)
            if compact and not index.store.info().compact:
                index.close()
                raise LookalikeError(
                    f"index {directory} keeps full vectors; --compact applies when an index is "
                    "made: index into a new --index DIR with --compact"
                )
            return index
        return cls.create(directory, model or default_model, weights, compact)

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
        return Path(self.store.location)

    @property
    def spec(self) -> EmbedderSpec:
        """How to build this index's model anywhere (a runner ships it to its workers)."""
        return EmbedderSpec.for_index(self.store.model_name, self.store.model_id, self._weights)

    @property
    def classifies(self) -> bool:
        """Whether this index's model stores ImageNet classes (for search by words)."""
        from lookalike.embed.registry import model_classifies

        return model_classifies(self.store.model_name, self._weights)

    @property
    def embedder(self) -> Embedder:
        """The index's model, loaded on first use; it must make the stored vectors."""
        if self._embedder is None:
            embedder = self._lend() if self._lend else self.spec.build()
            if embedder.model_id != self.store.model_id:
                raise ModelMismatchError(
                    f"index {self.store.location} holds vectors of {self.store.model_id}, "
                    f"not of {embedder.model_id}"
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
        runner: Runner | None = None,
        prune: bool = False,
        on_folder: Callable[[str], None] | None = None,
        adapt: bool = True,
        on_phase: Callable[[str], None] | None = None,
    ) -> AddReport:
        """Index the images under ``paths``: new and changed files are embedded, unchanged
        ones (same size and mtime) only stat'ed, vanished ones removed. Bad files are
        recorded as skipped with a reason. Each batch is committed on its own, so an
        interrupted run keeps its work and the next run resumes.

        ``runner`` decides where embedding runs (default: :class:`LocalRunner` with
        ``workers`` decode threads). ``prune`` also removes the files of roots that are missing
        or empty and of folders that fail to list (else kept: an unmounted drive).
        ``on_folder(folder)`` runs before each folder is walked and may raise to stop the run
        (what was committed stays; nothing is taken for deleted). With a model that has an
        ImageNet classifier, unchanged files indexed without classes get them (one forward
        pass each; their vectors are not rewritten).

        With ``adapt``, an index that has reached ``train.adapt.ADAPT_FROM`` images, or
        doubled since it last adapted, then adapts to them
        (:func:`lookalike.train.adapt.adapt_index`; ``report.adaptation``), unless it was
        told not to (:meth:`drop_whitening`) or searches a whitening the user chose.

        ``on_phase(name)`` runs as each phase that ``progress`` then counts begins:
        "embedding" (files), "classifying" (unchanged files given classes), "adapting"
        (sampled images); a phase with nothing to do is not announced."""
        if batch_size < 1:
            raise LookalikeError(f"batch size must be at least 1, got {batch_size}")
        runner = runner or LocalRunner(workers)
        with self.store.writing():
            plan = plan_add(self.store, paths, prune, on_folder, self.classifies)
            mapper = None
            if plan.embed or plan.classify:  # an unchanged folder never loads the model
                mapper = Mapper(self.spec, self.embedder if self._lend else self._embedder)
            batches = runner.map(plan.embed, mapper, batch_size) if mapper else iter(())
            if plan.embed and on_phase:
                on_phase("embedding")
            report = commit_batches(self.store, plan, batches, progress)
            if mapper is not None and plan.classify:
                if on_phase:
                    on_phase("classifying")
                classified = runner.map(plan.classify, mapper, batch_size)
                report.classified = commit_classes(self.store, plan, classified, progress)
            if mapper is not None:
                self._embedder = self._embedder or mapper.loaded
        if adapt:
            self._adapt_if_due(report, progress, on_phase)
        return report

    def _adapt_if_due(
        self,
        report: AddReport,
        progress: Progress | None,
        on_phase: Callable[[str], None] | None,
    ) -> None:
        from lookalike.train.adapt import adapt_index, adaptation_due  # it needs the Index

        if adaptation_due(self):
            if on_phase:
                on_phase("adapting")
            try:
                report.adaptation = adapt_index(self, progress=progress)
            except LookalikeError as exc:  # e.g. the files are on a drive not mounted now
                report.not_adapted = str(exc)

    def writing(self) -> AbstractContextManager[Store]:
        """Hold the writer lock across several calls (each write call also takes it alone)."""
        return self.store.writing()

    def learn_whitening(self, dims: int | None = None, centre_only: bool = False) -> int:
        """Learn PCA-whitening from this index's own vectors and use it from now on, for the
        stored vectors and for queries (``dims`` keeps the strongest directions;
        ``centre_only`` subtracts their mean and nothing more). Returns the number of vectors
        it was learned from. Files added later are transformed the same way."""
        with self.store.writing():
            vectors = self.store.all_vectors()
            if len(vectors) < 2:
                raise LookalikeError("whitening needs an index of at least 2 images")
            learned = learn_centring(vectors) if centre_only else learn_whitening(vectors, dims)
            self.store.set_whitening(learned)
        return len(vectors)

    def use_whitening(self, whitening: Whitening | None) -> None:
        """Transform the stored vectors and queries by ``whitening`` (learned elsewhere, as
        :func:`lookalike.train.adapt.adapt_index` does) from now on; None: the raw vectors."""
        with self.store.writing():
            self.store.set_whitening(whitening)

    def stop_adapting(self) -> None:
        """Search with the raw vectors if the index was adapted, and keep them: :meth:`add`
        no longer adapts it on its own (a whitening the user chose stays)."""
        with self.store.writing():
            whitening = self.store.whitening()
            if whitening is not None and whitening.kind == ADAPTED:
                self.store.set_whitening(None)
            self.store.set_adapts(False)

    def drop_whitening(self) -> None:
        """Search with the raw vectors again, and from now on: :meth:`add` no longer adapts
        the index on its own (:func:`lookalike.train.adapt.adapt_index` would again)."""
        with self.store.writing():
            self.store.set_whitening(None)
            self.store.set_adapts(False)

    def remove(self, paths: Iterable[str | Path]) -> int:
        """Drop files (or everything under folders) from the index; returns how many."""
        roots = absolute_roots(paths)
        with self.store.writing():
            gone = [p for p in self.store.stat_map() if is_under(p, roots)]
            if gone:
                self.store.write([], gone)
        return len(gone)

    # reading

    def search(
        self,
        query: Query | None = None,
        k: int = 10,
        exclude_self: bool = False,
        filters: Filters | None = None,
        text: str | None = None,
    ) -> list[Hit]:
        """The ``k`` most alike indexed images, best first; ``text="red car"`` (or a
        :class:`TextQuery`) searches by words instead. Raises ImageError for a bad image,
        LookalikeError for a bad region, or where the index cannot be searched by words."""
        if text is not None and query is None:
            query = TextQuery(text)
        elif query is None or text is not None:
            raise LookalikeError("search needs one query: an image, or text=")
        result = self.search_many([query], k, exclude_self, filters)[0]
        if result.error:
            raise result.cause or ImageError(result.error)
        return result.hits

    def search_many(
        self,
        queries: Sequence[Query],
        k: int = 10,
        exclude_self: bool = False,
        filters: Filters | None = None,
        orientations: bool = False,
        rerank: bool = True,
    ) -> list[SearchResult]:
        """Answer many queries in one batch; a bad query gets an error, not an exception.

        ``filters`` keeps only the images that pass them (a folder, a date range, a minimum
        size, a set of ids): the store searches among those alone, so ``k`` results come
        back whenever ``k`` images pass. ``orientations`` also finds turned and mirrored
        copies (each image query embedded in its eight orientations and its centre,
        ``Hit.transform``); ``rerank`` re-orders the first hits by spatial verification of
        local features, where the index stores them (:mod:`lookalike.search.spatial`; not
        with ``orientations``)."""
        if orientations:
            return rank_oriented(
                self.store, lambda: self.embedder, queries, k, exclude_self, filters
            )
        return rank(self.store, lambda: self.embedder, queries, k, exclude_self, filters, rerank)

    def band_thresholds(self) -> dict[Band, float]:
        """The lowest score of each band of likeness for this index's model's vectors."""
        return thresholds_for(self.store.model_name)

    def duplicates(
        self,
        band: str | None = None,
        threshold: float | None = None,
        orientations: bool = False,
        prefer_folders: Sequence[str | Path] = (),
        prefer_formats: Sequence[str] = (),
        k: int = 10,
        exclude: Sequence[str | Path] = (),
    ) -> list[DuplicateGroup]:
        """Groups of copies among the indexed images (:mod:`lookalike.dupes`), largest
        first: every two members score at least the ``threshold`` (default: the lowest score
        of ``band``, 'edited' unless given). Each group's suggested keeper comes first;
        ``prefer_folders`` and ``prefer_formats`` come before resolution, size and date.
        ``orientations`` also finds turned and mirrored copies (loading the model). Images
        under the ``exclude`` folders (where copies were moved to) are left out."""
        rules = KeeperRules.of([os.fspath(f) for f in prefer_folders], prefer_formats)
        return find_duplicates(
            self.store,
            band,
            threshold,
            orientations,
            rules,
            lambda: self.embedder,
            k,
            [os.fspath(f) for f in exclude],
        )

    def mark_not_duplicates(self, paths: Sequence[str | Path]) -> int:
        """Record that no two of these indexed files are duplicates: later scans keep them
        apart. Returns how many files the verdict covers."""
        ids = []
        for path in paths:
            record = self.store.record_by_path(os.path.abspath(os.fspath(path)))
            if record is None or record.status != "ok":
                raise LookalikeError(f"{path} is not an indexed image")
            ids.append(record.id)
        if len(set(ids)) < 2:
            raise LookalikeError("a 'not duplicates' verdict needs at least two different files")
        with self.store.writing():
            self.store.add_not_duplicates(ids)
        return len(set(ids))

    def plan_moves(self, paths: Sequence[str | Path], destination: str | Path) -> MovePlan:
        """Where moving these indexed files under ``destination`` would put them (a dry
        run: nothing moves)."""
        return plan_moves(self.store, [os.fspath(p) for p in paths], destination)

    def move(self, plan: MovePlan) -> Path:
        """Carry out a plan: files moved, never deleted or overwritten, the index following
        them; returns the journal that :meth:`undo_moves` takes."""
        return apply_moves(self.store, plan)

    def undo_moves(self, journal: str | Path) -> UndoReport:
        """Put back every file that a journal records as moved."""
        return undo_moves(self.store, journal)

    def record(self, image_id: int) -> ImageRecord | None:
        return self.store.record(image_id)

    def records(self, status: str | None = "ok") -> Iterator[ImageRecord]:
        """Every record in id order (``status`` None: skipped files too)."""
        return self.store.iter_records(status)

    def generation(self) -> int:
        """Grows with every write to the index, by any process: a cache key for readers."""
        return self.store.generation()

    def info(self) -> IndexInfo:
        from lookalike.train.adapt import adapts_on_its_own, ends_whitened  # it needs the Index

        info = self.store.info()
        whitening = self.store.whitening() if info.whitening_dim else None
        return IndexInfo(
            directory=info.location,
            model=info.model_name,
            model_id=info.model_id,
            dim=info.dim,
            images=info.images,
            skipped=info.skipped,
            disk_bytes=info.disk_bytes,
            whitening_dim=info.whitening_dim,
            centred_only=whitening is not None and whitening.centres_only,
            whitening_kind=whitening.kind if whitening else None,
            store=info.kind,
            vector_index=info.vector_index,
            recall_at_10=info.recall_at_10,
            compact=info.compact,
            adapts=adapts_on_its_own(self),
            model_whitened=ends_whitened(info.model_name),
        )

    def measure_recall(self, queries: int = 200) -> float:
        """recall@10 of this index's search against exact search, with ``queries`` stored
        vectors as the queries (each leaving itself out); kept for ``info`` and the web's
        ``/api/stats``. Reads every stored vector once."""
        return self.store.measure_recall(queries)

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file the index holds as skipped."""
        return [(r.path, r.reason or "") for r in self.store.iter_records("skipped")]


def _str(path: str | Path | None) -> str | None:
    return os.fspath(path) if path is not None else None
