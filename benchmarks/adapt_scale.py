"""What re-adapting a large index costs: the writer's rebuild, and a reader's search meanwhile.

    python benchmarks/adapt_scale.py DIR [--n 1000000] [--data /work/data/eval]

``Index.add`` adapts an index again each time it has doubled (``lookalike.train.adapt``):
every stored vector is then compared through a new whitening, so the vector index is rebuilt
from the catalogue. This writes N records through the product's store under DIR, with the
vectors of ``search_scale.py`` (real embeddings, grown with PCA-shaped noise), then commits an
adapted whitening learned as ``adapt_index`` learns it (2,000 images x 3 views, one label per
image, shrinkage 1) from real views of real images (the image, its mirror, crops), and measures:

- the writer (a fresh process): its ``set_whitening`` call (the commit), its whole run (the
  base rebuilt and saved), its peak memory;
- readers that open the index and search: one started ``--reader-after`` seconds into the
  writer's run (while it rebuilds), one once it has committed, one once it is done: time to
  the first hit and peak memory;
- one query p50 / p99 and recall@10 of the held-out real queries against exact search in the
  whitened space, after; and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from lookalike.store.local import LocalStore
from lookalike.store.whitening import ADAPTED, Whitening, learn_label_whitening
from lookalike.train.adapt import SAMPLE, SHRINKAGE, VIEWS
from search_scale import K, grow, held_out, real_vectors
from store_scale import PEAK, build_store, in_process

WRITER = """
import sys, time
from pathlib import Path
from lookalike.store.local import LocalStore
from lookalike.store.whitening import Whitening
whitening = Whitening.from_bytes(Path(sys.argv[2]).read_bytes())
store = LocalStore.open(Path(sys.argv[1]))
started = time.perf_counter()
with store.writing():
    print("started", flush=True)
    store.set_whitening(whitening)
    print(f"committed {time.perf_counter() - started:.2f}", flush=True)
print(f"saved {time.perf_counter() - started:.2f}", flush=True)
"""

READER = """
import sys, time
import numpy as np
from pathlib import Path
from lookalike.store.local import LocalStore
started = time.perf_counter()
store = LocalStore.open(Path(sys.argv[1]))
store.search(np.load(sys.argv[2])[:1], 10)
print(f"first hit {time.perf_counter() - started:.2f}", flush=True)
"""


def adapted_whitening(vectors: np.ndarray, owner: np.ndarray, n: int) -> Whitening:
    """As ``adapt_index`` learns it, from SAMPLE real images' first VIEWS views."""
    rng = np.random.default_rng(1)
    images = rng.choice(owner.max() + 1, SAMPLE, replace=False)
    rows = np.concatenate([np.flatnonzero(owner == i)[:VIEWS] for i in images])
    learned = learn_label_whitening(vectors[rows], owner[rows], SHRINKAGE)
    return Whitening(learned.mean, learned.projection, ADAPTED, n)


def run(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PEAK + code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[list[str], float]:
    """(its printed lines, its peak resident MB)."""
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(err)
    return out.split("\n"), round(int(err.split()[-1]) / 1024, 1)


def exact_truth(base: np.ndarray, whitening: Whitening, queries: np.ndarray) -> np.ndarray:
    exact = faiss.IndexFlatIP(whitening.dim)
    for start in range(0, len(base), 100_000):
        exact.add(whitening.apply(base[start : start + 100_000]))
    faiss.omp_set_num_threads(2)
    _, truth = exact.search(whitening.apply(queries), K)
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookalike-scale")
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--spread", type=float, default=0.35)
    parser.add_argument("--reader-after", type=float, default=5.0, help="seconds (5)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors, owner = real_vectors(args.data, args.cache, args.views)
    queries, real = held_out(vectors, owner, rng)
    base = grow(real, args.n, args.spread, rng)
    store, _, build_s = build_store(args.directory, base, compact=False)
    kind = store.info().vector_index
    store.close()
    whitening = adapted_whitening(vectors, owner, args.n)
    (args.directory / "whitening.bin").write_bytes(whitening.to_bytes())
    queries_file = str(args.directory / "queries.npy")
    np.save(queries_file, queries)
    index = str(args.directory / "index")

    writer = run(WRITER, index, str(args.directory / "whitening.bin"))
    assert writer.stdout is not None
    writer.stdout.readline()  # started
    time.sleep(args.reader_after)
    rebuilding = run(READER, index, queries_file)
    committed = writer.stdout.readline().split()
    at_commit = run(READER, index, queries_file)
    written, writer_peak = finish(writer)
    readers = {
        "while_rebuilding": finish(rebuilding),
        "after_commit": finish(at_commit),
        "after_save": finish(run(READER, index, queries_file)),
    }
    truth = exact_truth(base, whitening, queries)
    adapted = LocalStore.open(Path(index))
    base_after = adapted.info().vector_index
    searched = in_process(adapted, queries, truth)
    row = {
        "n": args.n,
        "base_before": kind,
        "first_build_s": round(build_s, 1),
        "set_whitening_s": float(committed[1]),
        "writer_s": float(next(line for line in written if line.startswith("saved")).split()[1]),
        "writer_peak_mb": writer_peak,
        **{
            f"reader_{when}": f"{float(lines[0].split()[2])} s, {peak} MB"
            for when, (lines, peak) in readers.items()
        },
        "base_after": base_after,
        **searched,
        "load": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row))
    print(f"at {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
