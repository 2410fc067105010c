"""The Milvus store: records and vectors in a Milvus collection, through pymilvus's MilvusClient.

``milvus://HOST:PORT/COLLECTION[?index=HNSW&M=16&efConstruction=200&ef=64&timeout=30
&consistency=Strong]``.

Layout: the collection ``COLLECTION`` holds one row per known file (status 'ok' or 'skipped'):
its id, path, status, the filter columns (width, height, capture day), the rest of its record
as JSON, its classes and local features (base64) and its vector (a zero vector when skipped,
never searched). One row is one image, so a record is never without its vector. Rows of status
'meta' are the store's own, named by their ``path`` (``lookalike:...``, never absolute): the
model (name, id, dim), one generation counter per writer, the last measured recall, and the
not-duplicate verdicts (their two ids in ``width`` and ``height``). One collection, not a
companion beside it, because each collection Milvus loads costs seconds and memory.

Ids are a 53-bit hash of the path (a JavaScript number in the web API stays exact): the same
file gets the same id from any writer, so two ``lookalike index`` runs that both upsert a file
leave one record of it (the last write wins); a path whose id another path holds (a hash
collision) is left out with a warning, not written over it. Every read and search is of consistency
level Strong unless ``consistency=Session`` (see CONSISTENCY): it sees every write made
before it, by any client.

Writers: Milvus has no lock, and this store takes none. :meth:`MilvusStore.writing` only scopes
a writer's generation counter; any number of processes may write at once. Each write is an
upsert by id (and a delete by id), so concurrent runs neither corrupt the collection nor lose
a record: a file both runs see is written twice, to one row; a removal is made only by a run
that found the file gone from the disk it walked.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import itertools
import json
import logging
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from lookalike.decode.image import ImageMeta
from lookalike.embed.classes import TopClasses
from lookalike.embed.local_features import LocalFeatures
from lookalike.errors import IndexNotFoundError, LookalikeError, LookalikeWarning, StoreError
from lookalike.files.paths import display_path, from_stored, to_stored
from lookalike.search.filters import Filters, milvus_expression
from lookalike.store import ann
from lookalike.store.base import Ranking, StoreInfo
from lookalike.store.catalogue import ClassTable, Upsert
from lookalike.store.record import META_FIELDS, ImageRecord
from lookalike.store.whitening import Whitening

SCHEME = "milvus"
STORE_KIND = "milvus"
META = "lookalike:"  # the path prefix of the store's own rows
ID_BITS = 53  # ids stay exact as JavaScript numbers (the web API's JSON)

# Index types and their settings: (build parameters, search parameters), the defaults chosen
# for unit vectors searched by inner product (Milvus's guidance: HNSW for recall at low
# latency while the collection fits in memory, IVF_FLAT or IVF_SQ8 to trade recall for memory).
INDEX_TYPES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 16}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 16}),
    "FLAT": ({}, {}),
}
# Strong: every read sees every write made before it, by any client; it waits for the server's
# next time tick (proxy.timeTickInterval, 200 ms by default). Session: this client's own writes
# at once, other clients' as Bounded does (within common.gracefulTime, 5 s by default).
CONSISTENCY = ("Strong", "Session")
DEFAULT_TIMEOUT_S = 30  # whole seconds: pymilvus bounds its retries by an int timeout only
PATH_BYTES = 16384  # a path's stored form (files.paths) may be longer than PATH_MAX
TEXT_BYTES = 65535  # Milvus's longest VARCHAR
QUERY_LIMIT = 16384  # Milvus's most rows (and top k) in one answer
UPSERT_ROWS = 256  # rows per request: well under gRPC's message limit with local features
RECORD_FIELDS_OUT = ["id", "path", "record"]
FILES = 'status in ["ok", "skipped"]'


def is_milvus(location: object) -> bool:
    """Whether ``location`` names a Milvus collection rather than a directory."""
    return isinstance(location, str) and location.startswith(f"{SCHEME}://")


@dataclass(frozen=True)
class MilvusLocation:
    """A parsed ``milvus://HOST:PORT/COLLECTION?...`` location."""

    host: str
    port: int
    collection: str
    index_type: str | None = None  # None: as the collection has it (HNSW when made)
    build: dict[str, int] = field(default_factory=dict)  # given build parameters
    search: dict[str, int] = field(default_factory=dict)  # given search parameters
    timeout_s: int = DEFAULT_TIMEOUT_S  # each call's, retries included
    consistency: str = "Strong"  # of every read and search (CONSISTENCY)

    @classmethod
    def parse(cls, url: str) -> MilvusLocation:
        """The location of ``url``, or a one-line LookalikeError saying what is wrong."""
        parts = urlsplit(url)
        collection = parts.path.strip("/")
        if parts.scheme != SCHEME or not parts.hostname or not collection:
            raise LookalikeError(f"{url}: a Milvus index is milvus://HOST:PORT/COLLECTION")
        if not (collection[0].isalpha() or collection[0] == "_") or not all(
            c.isalnum() or c == "_" for c in collection
        ):
            raise LookalikeError(
                f"{url}: a collection name is letters, digits and underscores, not a digit first"
            )
        try:
            port = parts.port or 19530
        except ValueError:
            raise LookalikeError(f"{url}: the port is not a number") from None
        query = dict(parse_qsl(parts.query))
        index_type = query.pop("index", None)
        consistency = query.pop("consistency", "Strong").capitalize()
        if consistency not in CONSISTENCY:
            raise LookalikeError(
                f"{url}: consistency={consistency} is not one of {', '.join(CONSISTENCY)}"
            )
        if index_type is not None and index_type.upper() not in INDEX_TYPES:
            raise LookalikeError(
                f"{url}: index={index_type} is not one of {', '.join(INDEX_TYPES)}"
            )
        try:
            numbers = {key: int(value) for key, value in query.items()}
        except ValueError:
            raise LookalikeError(f"{url}: settings after '?' take whole numbers") from None
        timeout = numbers.pop("timeout", DEFAULT_TIMEOUT_S)
        if timeout < 1:
            raise LookalikeError(f"{url}: timeout is whole seconds, at least 1")
        known = {key for build, search in INDEX_TYPES.values() for key in (*build, *search)}
        unknown = set(numbers) - known
        if unknown:
            raise LookalikeError(
                f"{url}: unknown setting(s) {', '.join(sorted(unknown))} "
                f"(known: index, consistency, timeout, {', '.join(sorted(known))})"
            )
        return cls(
            host=parts.hostname,
            port=port,
            collection=collection,
            index_type=index_type.upper() if index_type else None,
            build={k: v for k, v in numbers.items() if k in _BUILD_KEYS},
            search={k: v for k, v in numbers.items() if k not in _BUILD_KEYS},
            timeout_s=timeout,
            consistency=consistency,
        )

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The location without its settings: what ``info`` shows and errors name."""
        return f"{SCHEME}://{self.host}:{self.port}/{self.collection}"

    def index_params(self, index_type: str) -> tuple[dict[str, int], dict[str, int]]:
        """Build and search parameters of ``index_type``: its defaults, then those given."""
        build, search = INDEX_TYPES[index_type]
        return (
            {**build, **{k: v for k, v in self.build.items() if k in build}},
            {**search, **{k: v for k, v in self.search.items() if k in search}},
        )


_BUILD_KEYS = {key for build, _ in INDEX_TYPES.values() for key in build}


def stable_id(path: str) -> int:
    """The id of ``path`` for every writer: a 53-bit hash of its stored form. Two paths share
    one with odds of about n^2 / 2^54 among n files (1 in 18,000 at a million)."""
    digest = hashlib.blake2b(to_stored(path).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - ID_BITS)


T = TypeVar("T")


def _milvus_errors(cls: type[T]) -> type[T]:
    """Wrap every public method of ``cls`` so that pymilvus's errors leave as StoreError
    (pymilvus itself is imported only once a Milvus index is used)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(self: MilvusStore, *args: Any, **kwargs: Any) -> Iterator[Any]:
                with _store_errors(self.where):
                    yield from fn(self, *args, **kwargs)

            return generator

        @functools.wraps(fn)
        def function(self: MilvusStore, *args: Any, **kwargs: Any) -> Any:
            with _store_errors(self.where):
                return fn(self, *args, **kwargs)

        return function

    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member) and name != "writing":
            setattr(cls, name, wrap(member))
    return cls


def connect(where: MilvusLocation) -> Any:
    """A MilvusClient of the server at ``where``, or a one-line StoreError."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise LookalikeError(
            "a milvus:// index needs pymilvus: pip install 'lookalike[milvus]'"
        ) from None
    # pymilvus logs a failed call as well as raising it: the raise is the one line
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        # an alias of its own: pymilvus shares one connection per URI, and closing any
        # client of it would close it for the other stores of this process
        alias = f"lookalike-{uuid.uuid4().hex}"
        return MilvusClient(uri=where.uri, timeout=where.timeout_s, alias=alias)
    except MilvusException as exc:
        raise StoreError(
            f"cannot reach Milvus at {where.host}:{where.port} ({where.url}): "
            f"{' '.join(str(exc.message).split())}"
        ) from exc


@_milvus_errors
class MilvusStore:
    """One lookalike index in a Milvus collection (implements :class:`~lookalike.store.Store`)."""

    def __init__(self, where: MilvusLocation, client: Any) -> None:
        self.where = where
        self.location = where.url
        self.client = client
        self._writer: str | None = None  # this writer's generation counter, while writing
        self._written = 0
        model = self._meta_value("store")
        if model is None:
            raise StoreError(
                f"collection {where.collection} at {where.url} has no lookalike model: another "
                "program's, or one whose creation was cut short (drop it and index again)"
            )
        self.model_name: str = model["model_name"]
        self.model_id: str = model["model_id"]
        self.dim: int = int(model["dim"])
        self.index_type, self._search_params = self._index_settings()

    # opening

    @classmethod
    def exists(cls, url: str) -> bool:
        where = MilvusLocation.parse(url)
        client = connect(where)
        try:
            return bool(client.has_collection(where.collection, timeout=where.timeout_s))
        finally:
            client.close()

    @classmethod
    def open(cls, url: str) -> MilvusStore:
        where = MilvusLocation.parse(url)
        client = connect(where)
        with _closed_on_failure(client, where):
            if not client.has_collection(where.collection, timeout=where.timeout_s):
                raise IndexNotFoundError(
                    f"no index at {where.url} "
                    f"(create one with 'lookalike index FOLDER --index {where.url}')"
                )
            client.load_collection(where.collection, timeout=where.timeout_s)
            return cls(where, client)

    @classmethod
    def prepare(cls, url: str) -> None:
        """Check that the server answers before a model is loaded for a new index there."""
        connect(MilvusLocation.parse(url)).close()

    @classmethod
    def create(
        cls, url: str, model_name: str, model_id: str, dim: int, compact: bool = False
    ) -> MilvusStore:
        """Make the collection for vectors of ``model_id`` (``dim`` floats), with its vector
        index (``index=``, HNSW unless given) and its model row."""
        from pymilvus import DataType

        where = MilvusLocation.parse(url)
        if compact:
            raise LookalikeError(
                f"{where.url}: --compact is for an embedded index; Milvus keeps its own "
                "vector index (milvus://...?index=IVF_SQ8 stores vectors in 8 bits)"
            )
        client = connect(where)
        timeout = where.timeout_s
        with _closed_on_failure(client, where):
            if client.has_collection(where.collection, timeout=timeout):
                raise LookalikeError(f"an index already exists at {where.url}")
            index_type = where.index_type or "HNSW"
            build, _ = where.index_params(index_type)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("path", DataType.VARCHAR, max_length=PATH_BYTES)
            schema.add_field("status", DataType.VARCHAR, max_length=8)
            schema.add_field("width", DataType.INT64)  # 0: unknown
            schema.add_field("height", DataType.INT64)
            schema.add_field("taken_day", DataType.VARCHAR, max_length=10)  # "": unknown
            schema.add_field("record", DataType.VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("classes", DataType.VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("local", DataType.VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            vector_index = client.prepare_index_params()
            vector_index.add_index("vector", index_type=index_type, metric_type="IP", params=build)
            client.create_collection(
                where.collection,
                schema=schema,
                index_params=vector_index,
                consistency_level="Strong",
                timeout=timeout,
            )
            model = {"model_name": model_name, "model_id": model_id, "dim": dim}
            client.upsert(where.collection, [_meta_row("store", model, dim)], timeout=timeout)
            return cls(where, client)

    def close(self) -> None:
        self.client.close()

    def _index_settings(self) -> tuple[str, dict[str, int]]:
        """The collection's index type and the search parameters to use with it."""
        described = self.client.describe_index(
            self.where.collection, "vector", timeout=self.where.timeout_s
        )
        index_type = str(described.get("index_type", "FLAT")).upper()
        if index_type not in INDEX_TYPES:
            raise StoreError(
                f"{self.location} has a {index_type} index, which lookalike cannot use"
            )
        if self.where.index_type not in (None, index_type):
            raise LookalikeError(
                f"{self.location} has a {index_type} vector index; index={self.where.index_type} "
                "applies when an index is made"
            )
        return index_type, self.where.index_params(index_type)[1]

    # reading

    def count(self) -> int:
        return self._count('status == "ok"')

    def _count(self, expression: str) -> int:
        return int(self._query(expression, ["count(*)"])[0]["count(*)"])

    def generation(self) -> int:
        rows = self._query_all(_meta_like("generation:"), ["record"])
        return sum(int(row["record"]) for row in rows)

    def record(self, image_id: int) -> ImageRecord | None:
        return self.records([image_id]).get(image_id)

    def records(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        for chunk in _id_chunks(ids):
            for row in self._query(f"id in {chunk} and {FILES}", RECORD_FIELDS_OUT):
                found[int(row["id"])] = _record(row)
        return found

    def record_by_path(self, path: str) -> ImageRecord | None:
        return self.record(stable_id(path))

    def iter_records(self, status: str | None = None) -> Iterator[ImageRecord]:
        expression = f"status == {json.dumps(status)}" if status else FILES
        rows = self._query_all(expression, RECORD_FIELDS_OUT)
        return iter(sorted((_record(row) for row in rows), key=lambda r: r.id))

    def stat_map(self) -> dict[str, tuple[int, int, int]]:
        found = {}
        for row in self._query_all(FILES, ["path", "record"]):
            fields = json.loads(row["record"])
            found[from_stored(row["path"])] = (int(row["id"]), fields["size"], fields["mtime_ns"])
        return found

    def vector(self, image_id: int) -> np.ndarray | None:
        rows = self._query(f'id == {int(image_id)} and status == "ok"', ["vector"])
        return np.asarray(rows[0]["vector"], np.float32) if rows else None

    def vectors_of(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        found = {}
        for chunk in _id_chunks(ids):
            for row in self._query(f'id in {chunk} and status == "ok"', ["id", "vector"]):
                found[int(row["id"])] = np.asarray(row["vector"], np.float32)
        return found

    def local_features(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        found = {}
        for chunk in _id_chunks(ids):
            expression = f'id in {chunk} and status == "ok" and local != ""'
            for row in self._query(expression, ["id", "local"]):
                found[int(row["id"])] = LocalFeatures.from_bytes(*_unpack(row["local"]))
        return found

    def all_vectors(self) -> np.ndarray:
        chunks = [v for _, v in self.iter_vectors()]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def iter_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for rows in self._batches('status == "ok"', ["vector"]):
            ids = np.fromiter((r["id"] for r in rows), np.int64, len(rows))
            yield ids, np.asarray([r["vector"] for r in rows], np.float32).reshape(-1, self.dim)

    def whitening(self) -> Whitening | None:
        return None  # set_whitening refuses one

    def whitened(self) -> bool:
        return False

    def adapts(self) -> bool:
        return False  # searches its stored vectors as they are (set_whitening)

    def search(self, queries: np.ndarray, k: int, filters: Filters | None = None) -> list[Ranking]:
        """Top ``k`` (record, cosine) per row of float32 (n, dim), best first; the filters go
        into Milvus as a boolean expression (:func:`~lookalike.search.filters.milvus_expression`)
        so a narrow filter still returns ``k`` results when that many pass."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (n, {self.dim}), got {queries.shape}")
        limit = min(k, QUERY_LIMIT)
        params = dict(self._search_params)
        if "ef" in params:
            params["ef"] = max(params["ef"], limit)  # HNSW needs ef >= k
        expression = milvus_expression(filters or Filters())
        rankings: list[Ranking] = []
        for start in range(0, len(queries), 1024):
            answers = self.client.search(
                self.where.collection,
                data=queries[start : start + 1024].tolist(),
                limit=limit,
                filter=expression,
                output_fields=RECORD_FIELDS_OUT[1:],
                search_params={"metric_type": "IP", "params": params},
                consistency_level=self.where.consistency,
                timeout=self.where.timeout_s,
            )
            for hits in answers:
                rankings.append(
                    [
                        (_record({"id": hit["id"], **hit["entity"]}), float(hit["distance"]))
                        for hit in hits
                    ]
                )
        return rankings

    def info(self) -> StoreInfo:
        recall = self._meta_value("recall")
        params = " ".join(f"{k}={v}" for k, v in self._search_params.items())
        return StoreInfo(
            location=self.location,
            kind=STORE_KIND,
            vector_index=f"{self.index_type} IP {params}".strip(),
            recall_at_10=float(recall["recall"]) if recall else None,
            model_name=self.model_name,
            model_id=self.model_id,
            dim=self.dim,
            images=self.count(),
            skipped=self._count('status == "skipped"'),
            disk_bytes=0,  # kept by the Milvus cluster, which does not tell one collection's size
            whitening_dim=None,
        )

    def measure_recall(self, queries: int) -> float:
        ids = [int(r["id"]) for r in self._query_all('status == "ok"', [])]
        if not ids:
            return 1.0
        chosen = np.random.default_rng().choice(ids, min(queries, len(ids)), replace=False)
        rows = self._query(f"id in {[int(i) for i in chosen]}", ["vector"])
        raw = np.asarray([r["vector"] for r in rows], np.float32).reshape(-1, self.dim)
        found = [[record.id for record, _ in ranking] for ranking in self.search(raw, ann.K + 1)]
        recall = ann.recall_of_stored(raw, found, self.iter_vectors())
        measured = {"recall": round(recall, 4), "queries": len(raw)}
        self._upsert([_meta_row("recall", measured, self.dim)])
        return recall

    def class_table(self, filters: Filters | None = None) -> ClassTable:
        expression = milvus_expression(filters or Filters()) + ' and classes != ""'
        rows = sorted(self._query_all(expression, ["classes"]), key=lambda r: int(r["id"]))
        return ClassTable.of([(int(r["id"]), *_unpack(r["classes"])) for r in rows])

    def unclassified_paths(self) -> set[str]:
        rows = self._query_all('status == "ok" and classes == ""', ["path"])
        return {from_stored(r["path"]) for r in rows}

    def not_duplicate_pairs(self) -> set[tuple[int, int]]:
        rows = self._query_all(_meta_like("nodup:"), ["width", "height"])
        return {(int(r["width"]), int(r["height"])) for r in rows}

    # writing

    @contextmanager
    def writing(self) -> Iterator[MilvusStore]:
        """Scope this writer's generation counter. Takes no lock: other processes may write
        at the same time (see the module's docstring for why that is safe)."""
        if self._writer is not None:
            yield self
            return
        self._writer, self._written = uuid.uuid4().hex, 0
        try:
            yield self
        finally:
            self._writer = None

    def write(self, upserts: Iterable[Upsert], removals: Iterable[str] = ()) -> int:
        """Removals, then upserts, then the generation: a batch cut off by a failure leaves
        whole rows, and the next run's stat_map redoes whatever did not land."""
        self._need_writer("write")
        for chunk in _id_chunks(sorted({stable_id(path) for path in removals})):
            self._delete(f"{_meta_like('nodup:')} and (width in {chunk} or height in {chunk})")
            self._delete(f"id in {chunk} and {FILES}")
        self._upsert(self._row(u) for u in self._own_ids(upserts))
        return self._bump()

    def _own_ids(self, upserts: Iterable[Upsert]) -> Iterator[Upsert]:
        """``upserts`` less those whose id another path already holds (two paths whose 53-bit
        hashes agree: about 1 in 18,000 at a million files), each left out with a warning
        rather than written over the other file's row. Reads at Session consistency: a
        collision with a row another writer wrote a moment ago can still slip through."""
        items = iter(upserts)
        while chunk := list(itertools.islice(items, UPSERT_ROWS)):
            ids = sorted({stable_id(u.path) for u in chunk})
            owners = {
                int(row["id"]): row["path"]
                for row in self._query(f"id in {ids} and {FILES}", ["id", "path"], "Session")
            }
            for u in chunk:
                owner = owners.setdefault(stable_id(u.path), to_stored(u.path))
                if owner == to_stored(u.path):
                    yield u
                else:
                    warnings.warn(
                        f"{display_path(u.path)} is not indexed: its id in the collection is "
                        f"that of {display_path(from_stored(owner))} (a hash collision)",
                        LookalikeWarning,
                        stacklevel=2,
                    )

    def write_classes(self, items: Iterable[tuple[str, TopClasses]]) -> int:
        self._need_writer("write_classes")
        classes = {stable_id(path): top for path, top in items}
        for chunk in _id_chunks(sorted(classes), UPSERT_ROWS):
            rows = self._query(f'id in {chunk} and status == "ok"', ["*"])
            for row in rows:  # Milvus 2.3 replaces whole rows: the rest is written back
                row["classes"] = _pack(*classes[int(row["id"])].to_bytes())
                row["vector"] = [float(x) for x in row["vector"]]
            self._upsert(rows)
        return self._bump()

    def add_not_duplicates(self, ids: Sequence[int]) -> int:
        self._need_writer("add_not_duplicates")
        unique = sorted({int(i) for i in ids})
        pairs = [(a, b) for n, a in enumerate(unique) for b in unique[n + 1 :]]
        self._upsert([_meta_row(f"nodup:{a}:{b}", None, self.dim, a, b) for a, b in pairs])
        return self._bump()

    def set_whitening(self, whitening: Whitening | None) -> int:
        self._need_writer("set_whitening")
        if whitening is not None:
            raise LookalikeError(
                f"{self.location}: a Milvus index searches its stored vectors as they are; "
                "whitening is for an embedded index"
            )
        return self.generation()

    def set_adapts(self, adapts: bool) -> None:
        self._need_writer("set_adapts")  # nothing to keep: it never adapts

    def _need_writer(self, call: str) -> None:
        if self._writer is None:
            raise RuntimeError(f"MilvusStore.{call} is for inside `store.writing()`")

    def _bump(self) -> int:
        """Count one more write of this writer; the generation is the sum of all writers'."""
        assert self._writer is not None
        self._written += 1
        self._upsert([_meta_row(f"generation:{self._writer}", self._written, self.dim)])
        return self.generation()

    def _row(self, u: Upsert) -> dict[str, Any]:
        """The collection row of one upsert (a zero vector when skipped: never searched)."""
        embedded = u.vector is not None
        meta = u.meta or ImageMeta()
        fields = {
            "size": u.size,
            "mtime_ns": u.mtime_ns,
            "status": "ok" if embedded else "skipped",
            "reason": u.reason,
            **{name: getattr(meta, name) for name in META_FIELDS},
            "model_id": self.model_id if embedded else None,
        }
        if u.vector is not None:
            vector = np.asarray(u.vector, np.float32).reshape(-1)
            if vector.shape != (self.dim,):
                raise ValueError(f"vector of {u.path} is {vector.shape}, index has {self.dim}")
        else:
            vector = np.zeros(self.dim, np.float32)
        local = _pack(*u.local_features.to_bytes()) if u.local_features is not None else ""
        return {
            "id": stable_id(u.path),
            "path": to_stored(u.path),
            "status": fields["status"],
            "width": meta.width or 0,
            "height": meta.height or 0,
            "taken_day": (meta.taken_at or "")[:10],
            "record": json.dumps(fields),
            "classes": _pack(*u.classes.to_bytes()) if u.classes is not None else "",
            # a descriptor set too long for one field is left out: no re-ranking of that image
            "local": local if len(local) <= TEXT_BYTES else "",
            "vector": vector.tolist(),
        }

    # the collection

    def _meta_value(self, key: str) -> Any:
        rows = self._query(f'status == "meta" and path == "{META}{key}"', ["record"])
        return json.loads(rows[0]["record"]) if rows else None

    def _upsert(self, rows: Iterable[dict[str, Any]]) -> None:
        """Upsert ``rows`` UPSERT_ROWS at a time (made as they go: a row's vector as a list of
        Python floats is 8 times its float32 size)."""
        rows = iter(rows)
        while chunk := list(itertools.islice(rows, UPSERT_ROWS)):
            self.client.upsert(self.where.collection, chunk, timeout=self.where.timeout_s)

    def _delete(self, expression: str) -> None:
        self.client.delete(self.where.collection, filter=expression, timeout=self.where.timeout_s)

    def _query(
        self, expression: str, fields: list[str], consistency: str | None = None
    ) -> list[dict[str, Any]]:
        rows = self.client.query(
            self.where.collection,
            filter=expression,
            output_fields=fields,
            consistency_level=consistency or self.where.consistency,
            timeout=self.where.timeout_s,
        )
        return list(rows)

    def _batches(self, expression: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row that ``expression`` keeps (with its id), in batches by ascending id:
        Milvus answers at most QUERY_LIMIT rows at once, and pages by primary key."""
        after = -1
        while True:
            rows = self.client.query(
                self.where.collection,
                filter=f"({expression}) and id > {after}",
                output_fields=sorted({*fields, "id"}),
                limit=QUERY_LIMIT // 4,
                consistency_level=self.where.consistency,
                timeout=self.where.timeout_s,
            )
            rows = sorted(rows, key=lambda r: int(r["id"]))
            if not rows:
                return
            yield rows
            after = int(rows[-1]["id"])

    def _query_all(self, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        return [row for rows in self._batches(expression, fields) for row in rows]


def _id_chunks(ids: Sequence[int], size: int = 1000) -> Iterator[list[int]]:
    """``ids`` as plain ints, ``size`` at a time: one ``id in [...]`` expression each."""
    for start in range(0, len(ids), size):
        yield [int(i) for i in ids[start : start + size]]


@contextmanager
def _store_errors(where: MilvusLocation) -> Iterator[None]:
    """pymilvus's and gRPC's errors inside the block leave as one-line StoreErrors."""
    try:
        yield
    except Exception as exc:
        if _is_milvus_error(exc):
            raise _store_error(where, exc) from exc
        raise


@contextmanager
def _closed_on_failure(client: Any, where: MilvusLocation) -> Iterator[None]:
    """Close ``client`` if the block fails, a Milvus error leaving as a one-line StoreError."""
    try:
        with _store_errors(where):
            yield
    except BaseException:
        client.close()
        raise


def _meta_like(prefix: str) -> str:
    return f'status == "meta" and path like "{META}{prefix}%"'


def _is_milvus_error(exc: BaseException) -> bool:
    """Whether pymilvus raised ``exc`` (or let a gRPC error through)."""
    import grpc
    from pymilvus.exceptions import MilvusException

    return isinstance(exc, MilvusException | grpc.RpcError)


def _store_error(where: MilvusLocation, exc: BaseException) -> StoreError:
    """A pymilvus error as a one-line StoreError naming the index."""
    message = getattr(exc, "message", None) or str(exc)
    return StoreError(f"Milvus at {where.url}: {' '.join(str(message).split())}")


def _meta_row(key: str, value: Any, dim: int, a: int = 0, b: int = 0) -> dict[str, Any]:
    """One of the store's own rows: ``value`` as JSON, ``a`` and ``b`` in width and height."""
    return {
        "id": stable_id(META + key),
        "path": META + key,
        "status": "meta",
        "width": a,
        "height": b,
        "taken_day": "",
        "record": json.dumps(value),
        "classes": "",
        "local": "",
        "vector": [0.0] * dim,
    }


def _pack(first: bytes, second: bytes) -> str:
    """Two byte strings as one ASCII text (Milvus 2.3 has no bytes field)."""
    return json.dumps([base64.b64encode(first).decode(), base64.b64encode(second).decode()])


def _unpack(text: str) -> tuple[bytes, bytes]:
    first, second = json.loads(text)
    return base64.b64decode(first), base64.b64decode(second)


def _record(row: dict[str, Any]) -> ImageRecord:
    fields = json.loads(row["record"])
    return ImageRecord(id=int(row["id"]), path=from_stored(row["path"]), **fields)
