"""Vector index kinds at scale, on vectors that behave like real ones.

    python benchmarks/search_scale.py [--data /work/data/eval] [--n 100000 1000000] [--json]

Real vectors: every image of the evaluation sets built by ``shared/datasets/build.py`` (clipart,
icons, photos: about 3,000 real images), embedded by MobileNetV2 (int8, the product's own
embedder; the default model when these figures were first taken) in ``--views`` views each
(the image, its mirror, four corner crops of 80 % and a centre crop of 60 %): about 21,000 real
embeddings, cached in ``--cache``. The views of 1,000 images (seeded) are held out as queries,
so no query is in the database.

Larger collections are grown around the real vectors: each new vector is a real one plus
Gaussian noise in the space of the real vectors' top 256 principal components, each component
scaled by its own standard deviation times ``--spread`` (0.35), then L2-normalised. The noise
has the real data's shape (its strong directions get more of it), which keeps the clusters,
the hubs and the intrinsic dimension of real embeddings; uniform or isotropic Gaussian data
would flatter IVF and ruin PQ.

For each index kind: build time, bytes per vector (the serialised index), p50 / p99 latency of
one query on one thread, queries/s of a batch of 1,000 on 1 and 2 threads, and recall@10 of
the held-out real queries against exact search. ``--json`` prints one JSON object per kind per
line (kind, n, p50_ms, p99_ms, recall_at_10, bytes_per_vector, ...). Prints the load average.

With ``--store DIR`` each N is also written through the product's own store under DIR, and
its row (``"kind": "store"``) adds the first build, a searching process's memory, the cost of
adding and removing 1,000 images and of one merge, and the whole ``lookalike search``,
``info`` and unchanged ``index`` commands: see ``store_scale.py``. ``--kinds`` with no names
skips the bare FAISS kinds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from PIL import Image, ImageOps

DIM = 1280
PCA_NOISE_DIMS = 256
HELD_OUT_IMAGES = 1000
K = 10


def views(image: Image.Image, count: int) -> list[Image.Image]:
    """The image, its mirror, four 80 % corner crops and a 60 % centre crop (first ``count``)."""
    w, h = image.size
    cw, ch = int(w * 0.8), int(h * 0.8)
    corners = [(0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)]
    crops = [image.crop((x, y, x + cw, y + ch)) for x, y in corners]
    centre = image.crop((int(w * 0.2), int(h * 0.2), int(w * 0.8), int(h * 0.8)))
    return [image, ImageOps.mirror(image), *crops, centre][:count]


def real_vectors(data: Path, cache: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32 (n, DIM), image number int64 (n,)), cached."""
    cached = cache / f"real-vectors-{count}views.npz"
    if cached.is_file():
        with np.load(cached) as saved:
            return saved["vectors"], saved["image"]
    from lookalike.decode.image import decode_image
    from lookalike.embed.registry import create_embedder
    from lookalike.files.walk import walk_images

    embedder = create_embedder("mobilenet_v2")
    paths = [e.path for e in walk_images([data])]
    chunks, owners = [], []
    started = time.perf_counter()
    for number, path in enumerate(paths):
        image = decode_image(path, max_side=2 * embedder.image_size).image
        chunk = views(image, count)
        chunks.append(embedder.embed(chunk))
        owners += [number] * len(chunk)
        if number % 500 == 0:
            print(f"  embedded {number}/{len(paths)} images, {time.perf_counter() - started:.0f} s")
    vectors, image_numbers = np.concatenate(chunks), np.asarray(owners, np.int64)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, image=image_numbers)
    return vectors, image_numbers


def held_out(
    vectors: np.ndarray, owner: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(1,000 queries among the views of HELD_OUT_IMAGES images, the other images' views in
    random order): no query has a view of its own image in the base."""
    held = rng.choice(owner.max() + 1, HELD_OUT_IMAGES, replace=False)
    is_query = np.isin(owner, held)
    queries = vectors[is_query][rng.choice(is_query.sum(), 1000, replace=False)]
    return queries, vectors[~is_query][rng.permutation((~is_query).sum())]


def grow(real: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors: the real ones, then real ones plus PCA-shaped noise (see above)."""
    if n <= len(real):
        return real[:n].copy()
    mean = real.mean(axis=0)
    _, singular, components = np.linalg.svd(real - mean, full_matrices=False)
    std = singular[:PCA_NOISE_DIMS] / np.sqrt(len(real))
    basis = components[:PCA_NOISE_DIMS].astype(np.float32)
    out = np.empty((n, real.shape[1]), np.float32)
    out[: len(real)] = real
    for start in range(len(real), n, 100_000):
        stop = min(n, start + 100_000)
        seeds = real[rng.integers(0, len(real), stop - start)]
        noise = (rng.standard_normal((stop - start, PCA_NOISE_DIMS)) * std * spread).astype(
            np.float32
        )
        grown = seeds + noise @ basis
        out[start:stop] = grown / np.linalg.norm(grown, axis=1, keepdims=True)
    return out


def kinds(n: int) -> dict[str, Callable[[], faiss.Index]]:
    """The index kinds compared, each with settings scaled to ``n``."""
    nlist = int(4 * np.sqrt(n))
    return {
        "flat": lambda: faiss.IndexFlatIP(DIM),
        "hnsw32": lambda: faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT),
        "ivf-flat": lambda: faiss.index_factory(
            DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT
        ),
        "ivf-sq8": lambda: faiss.index_factory(DIM, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT),
        "opq64-ivf-pq64": lambda: faiss.index_factory(
            DIM, f"OPQ64_256,IVF{nlist},PQ64", faiss.METRIC_INNER_PRODUCT
        ),
    }


def tune(index: faiss.Index, kind: str) -> str:
    """Search-time setting chosen for about 0.95 recall@10 (measured at 100k)."""
    name, value = ("efSearch", 128) if kind.startswith("hnsw") else ("nprobe", 32)
    if kind == "flat":
        return ""
    faiss.ParameterSpace().set_index_parameter(index, name, value)
    return f"{name}={value}"


def measure(
    kind: str,
    make: Callable[[], faiss.Index],
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, object]:
    faiss.omp_set_num_threads(2)
    index = make()
    started = time.perf_counter()
    if not index.is_trained:
        index.train(base[rng.choice(len(base), min(len(base), 100_000), replace=False)])
    index.add(base)
    build_s = time.perf_counter() - started
    setting = tune(index, kind)
    with tempfile.NamedTemporaryFile(suffix=".faiss") as saved:  # not a second copy in memory
        faiss.write_index(index, saved.name)
        size = os.path.getsize(saved.name)
    faiss.omp_set_num_threads(1)
    latencies = []
    for q in queries[:300]:
        t = time.perf_counter()
        index.search(q[None], K)
        latencies.append((time.perf_counter() - t) * 1000)
    rates = {}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        t = time.perf_counter()
        _, found = index.search(queries, K)
        rates[threads] = len(queries) / (time.perf_counter() - t)
    recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])
    return {
        "kind": kind,
        "n": len(base),
        "setting": setting,
        "build_s": round(build_s, 1),
        "bytes_per_vector": round(size / len(base), 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "qps_1_thread": round(rates[1], 1),
        "qps_2_threads": round(rates[2], 1),
        "recall_at_10": round(float(recall), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookalike-scale")
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--spread", type=float, default=0.35)
    parser.add_argument("--kinds", nargs="*", default=None, help="a subset of the kinds")
    parser.add_argument("--store", type=Path, help="also measure the product's store here")
    parser.add_argument("--compact", action="store_true", help="and a compact store (--store)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors, owner = real_vectors(args.data, args.cache, args.views)
    queries, real = held_out(vectors, owner, rng)
    if not args.json:
        print(f"{len(vectors)} real vectors ({len(real)} in the base, 1000 held-out queries)")
    for n in args.n:
        base = grow(real, n, args.spread, rng)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(base)
        faiss.omp_set_num_threads(2)
        _, truth = exact.search(queries, K)
        del exact  # a million float32 vectors: 5 GB that the kinds below need
        for kind, make in kinds(n).items():
            if args.kinds is not None and kind not in args.kinds:
                continue
            row = measure(kind, make, base, queries, truth, rng)
            row["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))
        if args.store:
            from store_scale import measure_store

            photo = next(iter(sorted((args.data / "photos").rglob("*.jpg"))))
            measure_store(args.store / f"n{n}", base, queries, truth, photo)
            if args.compact:
                measure_store(
                    args.store / f"n{n}-compact", base, queries, truth, photo, compact=True
                )


if __name__ == "__main__":
    main()
