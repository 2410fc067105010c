"""Milvus search against the embedded store, on the same vectors that behave like real ones.

    python benchmarks/milvus_search.py [--n 100000] [--data /work/data/eval] [--json]

Needs root: it starts PyPI's standalone Milvus server (``milvus``, the dev extra) with its own
default settings (``--server-setting`` changes one) inside a network namespace that has only
loopback (the server listens on every interface), and runs itself again inside that namespace
as the client; both go at the end.

The vectors are ``search_scale.py``'s: real embeddings of the evaluation images (cached in
``--cache``) grown to ``--n`` with noise shaped by their principal components; 1,000 held-out
real views are the queries. The same vectors go through the product's two stores, the embedded
``LocalStore`` (SQLite + FAISS, its own vector index for the size) and ``MilvusStore``
(``milvus://``, HNSW M=16 efConstruction=200 ef=64, inner product, Strong reads; then the
same collection read with ``consistency=Session``), and for each:
the time to write them all (and for Milvus to build its index), p50 / p99 of one query through
``store.search`` (300 queries), queries/s of a batch of 1,000 in one call, and recall@10 of the
batch against exact search. Milvus also gives its start-up costs: the server's start, a new
collection, a client's open. Prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np

from lookalike.decode.image import ImageMeta
from lookalike.store import Store, create_store, open_store
from lookalike.store.catalogue import Upsert
from search_scale import K, grow, held_out, real_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "store"))
from milvus_harness import MilvusServer, namespace_problem

MODEL = ("mobilenet_v2", "bench-v1")
BATCH = 10_000


def upserts(base: np.ndarray, first: int) -> Iterator[Upsert]:
    meta = ImageMeta(width=640, height=480, format="JPEG")
    for i in range(first, min(first + BATCH, len(base))):
        yield Upsert(f"/bench/{i}.jpg", 1000, 1, base[i], meta=meta)


def fill(store: Store, base: np.ndarray) -> float:
    started = time.perf_counter()
    with store.writing():
        for first in range(0, len(base), BATCH):
            store.write(upserts(base, first))
    return time.perf_counter() - started


def measure(
    name: str, store: Store, queries: np.ndarray, truth: np.ndarray, **extra: object
) -> dict[str, object]:
    """One query at a time, then a batch, through ``store.search``; positions from paths."""
    store.search(queries[:1], K)  # warm: the first search loads a local store's vectors
    latencies = []
    for q in queries[:300]:
        t = time.perf_counter()
        store.search(q[None], K)
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    rankings = store.search(queries, K)
    rate = len(queries) / (time.perf_counter() - t)
    found = [[int(Path(r.path).stem) for r, _ in ranking] for ranking in rankings]
    recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])
    return {
        "store": name,
        "vector_index": store.info().vector_index,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "batch_qps": round(rate, 1),
        "recall_at_10": round(float(recall), 4),
        **extra,
        "load": round(os.getloadavg()[0], 2),
    }


def timed(call: Callable[[], Store]) -> tuple[Store, float]:
    t = time.perf_counter()
    store = call()
    return store, time.perf_counter() - t


def wait_for_index(store: Store) -> float:
    """Seal what was written and wait until Milvus has indexed every row; seconds taken."""
    client, collection = store.client, store.where.collection  # type: ignore[attr-defined]
    t = time.perf_counter()
    client.flush(collection)
    while True:
        described = client.describe_index(collection, "vector")
        if described.get("pending_index_rows", 0) == 0 and described.get(
            "indexed_rows", 0
        ) >= described.get("total_rows", 1):
            return time.perf_counter() - t
        time.sleep(1)


def inside(args: argparse.Namespace) -> None:
    """The client's part, in the server's namespace."""
    rng = np.random.default_rng(0)
    vectors, owner = real_vectors(args.data, args.cache, args.views)
    queries, real = held_out(vectors, owner, rng)
    base = grow(real, args.n, args.spread, rng)
    exact = faiss.IndexFlatIP(base.shape[1])
    exact.add(base)
    _, truth = exact.search(queries, K)
    del exact
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        local, _ = timed(lambda: create_store(Path(folder) / "index", *MODEL, base.shape[1]))
        write_s = fill(local, base)
        rows.append(measure("local", local, queries, truth, write_s=round(write_s, 1)))
        local.close()
    milvus, create_s = timed(lambda: create_store(args.url, *MODEL, base.shape[1]))
    write_s = fill(milvus, base)
    index_s = wait_for_index(milvus)
    milvus.close()
    milvus, open_s = timed(lambda: open_store(args.url))
    t = time.perf_counter()
    milvus.search(queries[:1], K)
    first_ms = (time.perf_counter() - t) * 1000
    row = measure(
        "milvus",
        milvus,
        queries,
        truth,
        write_s=round(write_s, 1),
        index_build_s=round(index_s, 1),
        create_collection_s=round(create_s, 2),
        open_s=round(open_s, 2),
        first_query_ms=round(first_ms, 1),
    )
    rows.append(row)
    milvus.close()
    # Session: this client's own writes at once, others' within Bounded's staleness; no wait
    # for the server's next time tick (proxy.timeTickInterval)
    session = open_store(args.url + "?consistency=Session")
    rows.append(measure("milvus-session", session, queries, truth))
    session.close()
    for row in rows:
        print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookalike-scale")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--spread", type=float, default=0.35)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="KEY=N",
        help="a milvus.yaml setting of the server, e.g. proxy.timeTickInterval=20",
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)  # set for the run inside
    args = parser.parse_args()
    if args.url:
        inside(args)
        return
    namespace = f"lookalike-bench-{uuid.uuid4().hex[:6]}"
    problem = namespace_problem(namespace)
    if problem:
        raise SystemExit(f"milvus_search: {problem}")
    with tempfile.TemporaryDirectory() as data:
        settings = {k: int(v) for k, v in (kv.split("=", 1) for kv in args.server_setting)}
        server = MilvusServer(namespace, Path(data), settings=settings)  # else Milvus's own
        try:
            server.start()
            print(f"server start {server.started_s[0]:.1f} s, load {os.getloadavg()[0]:.2f}")
            url = server.url("bench")
            done = server.run(sys.executable, __file__, *sys.argv[1:], "--url", url, timeout=7200)
            print(done.stdout, end="")
            if done.returncode != 0:
                raise SystemExit(f"milvus_search failed:\n{done.stderr}")
        finally:
            server.stop()
            subprocess.run(["ip", "netns", "delete", namespace], check=False)


if __name__ == "__main__":
    main()
