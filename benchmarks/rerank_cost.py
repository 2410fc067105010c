"""What spatial re-ranking costs a search, and what its local features cost the index.

    python benchmarks/rerank_cost.py DATASET [--model M ...] [--queries N] [-k K]

Indexes DATASET (any folder of images; the shared sets' clip art is about 1,150) with each
model, then asks ``--queries`` indexed images (their stored vectors and local features are
reused, so no query is embedded) for their K best hits, with and without re-ranking. Prints
CPU milliseconds per query (of every thread), wall milliseconds, and the bytes of local
features per image. Nothing is asserted; compare the rows of one run (load average printed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lookalike import Index
from lookalike.config import DEFAULT_MODEL


def timed(index: Index, paths: list[str], k: int, rerank: bool) -> tuple[float, float]:
    """(CPU ms, wall ms) per query, queries one at a time as a user's searches come."""
    cpu, wall = time.process_time(), time.perf_counter()
    for path in paths:
        index.search_many([path], k, exclude_self=True, rerank=rerank)
    n = len(paths)
    return (time.process_time() - cpu) * 1e3 / n, (time.perf_counter() - wall) * 1e3 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", nargs="+", default=[DEFAULT_MODEL, "mobilenet_v2"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=100)
    args = parser.parse_args()
    print("| model | images | re-rank | CPU ms/query | wall ms/query | local bytes/image | load |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for model in args.model:
        with tempfile.TemporaryDirectory() as tmp, Index.create(Path(tmp) / "i", model) as index:
            index.add([args.dataset], adapt=False)  # adapting changes no re-ranking cost
            records = list(index.records())
            paths = [r.path for r in records[:: max(1, len(records) // args.queries)]]
            features = index.store.local_features([r.id for r in records])
            size = sum(f.nbytes for f in features.values()) / max(1, len(features))
            timed(index, paths[:5], args.k, True)  # warm: vector index and caches loaded
            for rerank in (False, True):
                cpu, wall = timed(index, paths, args.k, rerank)
                print(
                    f"| {model} | {len(records)} | {'on' if rerank else 'off'} | {cpu:.1f} | "
                    f"{wall:.1f} | "
                    f"{size:.0f} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
