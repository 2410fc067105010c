"""Near-duplicate grouping (``lookalike dupes``): how right, and how fast at scale.

    python benchmarks/dupes.py quality --photos /work/data/eval/photos --distractors DIR [--model M]
    python benchmarks/dupes.py scale --n 100000 1000000

``quality``: every photo under ``--photos`` gets edited copies (the copy-detection edits of
``lookalike.evaluate.edits``, plus turns of 180 and 270 degrees and two "identical" copies: a
JPEG re-encode at quality 80 and a half-size resize), written as JPEG files; the originals,
the copies and the real photos under ``--distractors`` (which are no copies of the
originals) are indexed by the real ``Index.add``, and grouped by the real
``find_duplicates`` at each band's threshold, with and without ``--orientations``. A pair
of images in one group is right when both come from the same original. It prints, per band:
pair precision, pair recall, and recall per edit (a copy counts as found when it shares a
group with its original); and the score distributions the thresholds were chosen from
(cosine of each edit with its original; the best score of each distractor with any other
image, i.e. how alike unrelated photos get).

``scale``: ``n`` synthetic vectors of the default dimension, grown from real embeddings (the
cached real vectors of ``benchmarks/search_scale.py``, one view per image: real vectors plus
noise shaped by their principal components, ``--spread`` 1.5 so that grown pictures are
distinct: at 200,000 their nearest neighbours score 0.66-0.78, like unrelated real photos,
where search_scale's 0.35 makes near-copies), with 5 % of them given a planted copy (the
vector plus a quarter of that noise: cosine about 0.95); grouped by the product's own
``candidate_pairs`` and ``complete_linkage`` with the neighbours from a FAISS index standing
in for the store's approximate one (``--index``: IVF-SQ8 by default, or OPQ64-IVF-PQ64,
4 sqrt(n) lists, ``--nprobe`` 8; the k neighbours' scores recomputed exactly from the vectors).
Prints build time, grouping time (the neighbour searches and the linkage), peak memory (RSS)
and the share of planted copies grouped with their vector. Every figure comes with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import Index
from lookalike.decode.image import decode_image
from lookalike.dupes.bands import BANDS, THRESHOLDS, thresholds_for
from lookalike.dupes.find import find_duplicates
from lookalike.dupes.grouping import candidate_pairs, complete_linkage
from lookalike.evaluate.edits import EDITS, apply_edit
from lookalike.files.walk import walk_images
from lookalike.train.adapt import adapt_index

EXTRA_EDITS = ("rotate_180", "rotate_270", "reencode_80", "resize_50")
TURNED_EDITS = ("flip", "rotate_90", "rotate_180", "rotate_270")  # what --orientations is for


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds used so far (user + system, all threads): the work, whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def edited(name: str, image: Image.Image) -> tuple[Image.Image, int]:
    """(the copy, the JPEG quality it is saved at)."""
    if name == "rotate_180":
        return image.transpose(Image.Transpose.ROTATE_180), 90
    if name == "rotate_270":
        return image.transpose(Image.Transpose.ROTATE_270), 90
    if name == "reencode_80":
        return image, 80
    if name == "resize_50":
        half = (max(1, image.width // 2), max(1, image.height // 2))
        return image.resize(half, Image.Resampling.LANCZOS), 90
    return apply_edit(name, image), 95


def write_copies(photos: Path, folder: Path) -> dict[str, str]:
    """Write every edit of every photo; returns path -> the original's path."""
    owner = {}
    for entry in walk_images([photos]):
        image = decode_image(entry.path).image
        owner[entry.path] = entry.path
        for name in (*EDITS, *EXTRA_EDITS):
            copy, quality = edited(name, image)
            target = folder / name / (Path(entry.path).stem + ".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            copy.convert("RGB").save(target, quality=quality)
            owner[str(target)] = entry.path
    return owner


def quality(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dupes-bench-") as tmp:
        copies = Path(tmp) / "copies"
        owner = write_copies(args.photos, copies)
        started = time.perf_counter()
        with Index.create(Path(tmp) / "index", args.model) as index:
            index.add([args.photos, copies, args.distractors], adapt=False)
            if args.adapt:
                adapt_index(index)  # the groups then read adapted cosines
            took = time.perf_counter() - started
            records = {r.id: r for r in index.records()}
            print(
                f"indexed {len(records)} images ({len(owner)} originals and copies, "
                f"{len(records) - len(owner)} distractors) in {took:.0f} s, load {load()}"
            )
            report_scores(index, records, owner)
            for orientations in (False, True):
                for band in BANDS:
                    started = time.perf_counter()
                    groups = find_duplicates(
                        index.store,
                        band,
                        orientations=orientations,
                        embedder=lambda: index.embedder,
                    )
                    took = time.perf_counter() - started
                    report_groups(
                        band, orientations, groups, records, owner, took, args.json, args.model
                    )
            alone_with_original(index, copies, owner, False, args.json)
            alone_with_original(index, copies, owner, True, args.json, TURNED_EDITS)


def alone_with_original(
    index: Index,
    copies: Path,
    owner: dict[str, str],
    orientations: bool,
    as_json: bool,
    only: tuple[str, ...] = (),
) -> None:
    """Recall per edit at each band when each photo has that one edited copy (the other
    edits' folders excluded): whether the copy is grouped with its original."""
    edits = (*EDITS, *EXTRA_EDITS)
    originals = sum(1 for p, o in owner.items() if p == o)
    table: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for edit in only or edits:
        others = [str(copies / e) for e in edits if e != edit]
        groups = find_duplicates(
            index.store,
            "similar",
            orientations=orientations,
            embedder=lambda: index.embedder,
            k=10 + len(edits),  # the excluded copies take places among the neighbours
            exclude=others,
        )
        found = dict.fromkeys(BANDS, 0)
        for group in groups:
            paths = {r.path for r in group.records}
            for copy in [group.keep, *group.duplicates]:
                original = owner.get(copy.path)
                if edit_of(copy.path, owner) != edit or original not in paths:
                    continue
                # the band of the copy-original pair: whichever of them is not the keeper
                # carries its score with the keeper; in a larger group, the weaker of both
                bands = [d.band for d in group.duplicates if d.path in (copy.path, original)]
                weakest = max(BANDS.index(b) for b in bands)
                for band in BANDS[weakest:]:
                    found[band] += 1
        table[edit] = {band: found[band] / originals for band in BANDS}
    took = time.perf_counter() - started
    if as_json:
        print(json.dumps({"alone_with_original": table, "orientations": orientations}))
        return
    print(
        f"\neach photo with one edited copy, orientations {'on' if orientations else 'off'}: "
        f"share of copies grouped with their original, at each band ({took:.0f} s, load {load()})"
    )
    print(f"{'edit':22}" + "".join(f"{b:>11}" for b in BANDS))
    for edit, row in table.items():
        print(f"{edit:22}" + "".join(f"{row[b]:11.3f}" for b in BANDS))


def edit_of(path: str, owner: dict[str, str]) -> str:
    return "original" if owner.get(path) == path else Path(path).parent.name


def report_scores(index: Index, records: dict, owner: dict[str, str]) -> None:  # type: ignore[type-arg]
    """The cosine of each edit with its original, and how alike unrelated photos get."""
    vectors = {i: index.store.vector(i) for i in records}
    by_path = {r.path: i for i, r in records.items()}
    per_edit: dict[str, list[float]] = defaultdict(list)
    for path, original in owner.items():
        if path != original and path in by_path and original in by_path:
            score = float(vectors[by_path[path]] @ vectors[by_path[original]])
            per_edit[edit_of(path, owner)].append(score)
    print("\ncosine of each edited copy with its original (no orientation handling)")
    print(f"{'edit':22}{'min':>7}{'p5':>7}{'median':>8}")
    for edit, scores in per_edit.items():
        q = np.quantile(scores, [0, 0.05, 0.5])
        print(f"{edit:22}{q[0]:7.3f}{q[1]:7.3f}{q[2]:8.3f}")
    distractors = [i for i, r in records.items() if r.path not in owner]
    originals = [by_path[p] for p, o in owner.items() if p == o and p in by_path]
    unrelated = []
    matrix = np.stack([vectors[i] for i in distractors + originals])
    for row, image_id in enumerate(distractors):
        scores = matrix @ vectors[image_id]
        scores[row] = -1.0
        unrelated.append(float(scores.max()))
    q = np.quantile(unrelated, [0.5, 0.9, 0.99, 1.0])
    print(
        f"\nbest score of each of {len(distractors)} distractors with any other distractor or "
        f"original: median {q[0]:.3f}, p90 {q[1]:.3f}, p99 {q[2]:.3f}, max {q[3]:.3f} (the "
        "packages hold near-copies of their own: series of wallpapers, dark sky photographs)"
    )
    others = np.stack([vectors[i] for i in distractors])
    best = [float((others @ vectors[i]).max()) for i in originals]
    q = np.quantile(best, [0.5, 0.9, 0.99, 1.0])
    print(
        f"best score of each of {len(originals)} original photos with any distractor "
        f"(unrelated photos): median {q[0]:.3f}, p90 {q[1]:.3f}, p99 {q[2]:.3f}, max {q[3]:.3f}"
    )


def report_groups(
    band: str,
    orientations: bool,
    groups: list,  # type: ignore[type-arg]
    records: dict,  # type: ignore[type-arg]
    owner: dict[str, str],
    took: float,
    as_json: bool,
    model: str,
) -> None:
    predicted = right = among_distractors = 0
    found: dict[str, int] = defaultdict(int)
    for group in groups:
        paths = [r.path for r in group.records]
        for i, a in enumerate(paths):
            for b in paths[i + 1 :]:
                if a not in owner and b not in owner:
                    among_distractors += 1  # no ground truth: the packages hold near-copies
                    continue
                predicted += 1
                right += a in owner and b in owner and owner[a] == owner[b]
        members = set(paths)
        for path in paths:
            if path in owner and owner[path] != path and owner[path] in members:
                found[edit_of(path, owner)] += 1
    originals = sum(1 for p, o in owner.items() if p == o)
    truth = originals * (len(EDITS) + len(EXTRA_EDITS) + 1) * (len(EDITS) + len(EXTRA_EDITS)) // 2
    # with every edit of a photo in the collection at once (a group must be a clique)
    recall_per_edit = {e: found[e] / originals for e in (*EDITS, *EXTRA_EDITS)}
    out = {
        "band": band,
        "threshold": thresholds_for(model)[band],  # type: ignore[index]
        "orientations": orientations,
        "groups": len(groups),
        "pair_precision": right / predicted if predicted else 1.0,
        "pair_recall": right / truth,
        "pairs_among_distractors": among_distractors,
        "recall_per_edit": recall_per_edit,
        "seconds": round(took, 2),
        "load": load(),
    }
    if as_json:
        print(json.dumps(out))
        return
    print(
        f"\nband {band} (score >= {out['threshold']:.2f}), orientations "
        f"{'on' if orientations else 'off'}: {len(groups)} groups, pair precision "
        f"{out['pair_precision']:.3f}, pair recall {out['pair_recall']:.3f} (pairs among "
        f"distractors, not counted: {among_distractors}), {took:.1f} s, load {load()}"
    )
    print("  " + "  ".join(f"{e} {r:.2f}" for e, r in recall_per_edit.items()))


def scale(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from search_scale import real_vectors

    views, owner = real_vectors(args.data, args.cache, 7)
    real = views[np.r_[True, owner[1:] != owner[:-1]]]  # one view per image: distinct pictures
    for n in args.n:
        out = group_synthetic(real, n, args, np.random.default_rng(0))
        print(json.dumps(out) if args.json else out, flush=True)


def synthetic(
    real: np.ndarray, n: int, spread: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(float16 (n, d) vectors: grown pictures, then planted copies; the source of each copy)."""
    from search_scale import PCA_NOISE_DIMS, grow

    base_n = int(n / 1.05)
    base = grow(real, base_n, spread, rng)
    # A planted copy: its vector plus a quarter of the growing noise (cosine ~0.95).
    mean = real.mean(axis=0)
    _, singular, components = np.linalg.svd(real - mean, full_matrices=False)
    std = singular[:PCA_NOISE_DIMS] / np.sqrt(len(real))
    sources = rng.choice(base_n, n - base_n, replace=False)
    noise = rng.standard_normal((n - base_n, PCA_NOISE_DIMS)) * std * spread / 4
    copies = base[sources] + (noise @ components[:PCA_NOISE_DIMS]).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.concatenate([base, copies]).astype(np.float16), sources


def group_synthetic(
    real: np.ndarray, n: int, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, object]:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    vectors, sources = synthetic(real, n, args.spread, rng)  # float16: kept for the linkage
    started = time.perf_counter()
    nlist = int(4 * np.sqrt(n))
    kind = f"IVF{nlist},SQ8" if args.index == "ivf-sq8" else f"OPQ64_256,IVF{nlist},PQ64"
    index = faiss.index_factory(vectors.shape[1], kind, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors[rng.choice(n, min(n, 50 * nlist), replace=False)].astype(np.float32))
    for start in range(0, n, 100_000):
        index.add(vectors[start : start + 100_000].astype(np.float32))
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", args.nprobe)
    built = time.perf_counter() - started

    def neighbours(ids: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, near = index.search(np.asarray(queries, np.float32), args.k + 1)
        found = vectors[np.maximum(near, 0)].astype(np.float32)  # (m, k + 1, d)
        exact = np.einsum("md,mkd->mk", queries, found)
        return near.astype(np.int64), np.where(near >= 0, exact, -np.inf).astype(np.float32)

    def similarity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return vectors[left].astype(np.float32) @ vectors[right].astype(np.float32).T

    chunks = (
        (ids, vectors[ids].astype(np.float32))
        for ids in np.array_split(np.arange(n, dtype=np.int64), max(1, n // 4096))
    )
    started, cpu_started = time.perf_counter(), cpu_s()
    pairs = candidate_pairs(chunks, neighbours, THRESHOLDS["edited"])
    searched = time.perf_counter() - started
    groups = complete_linkage(pairs, THRESHOLDS["edited"], similarity)
    grouped, grouped_cpu = time.perf_counter() - started, cpu_s() - cpu_started
    group_of = {m: g for g, members in enumerate(groups) for m in members}
    base_n = n - len(sources)
    together = sum(
        1
        for copy, source in zip(range(base_n, n), sources, strict=True)
        if copy in group_of and group_of[copy] == group_of.get(int(source))
    )
    return {
        "n": n,
        "dim": int(vectors.shape[1]),
        "index": f"{kind} nprobe={args.nprobe}",
        "build_s": round(built, 1),
        "neighbours_s": round(searched, 1),
        "grouping_s": round(grouped, 1),
        "grouping_cpu_s": round(grouped_cpu, 1),
        "pairs": len(pairs),
        "groups": len(groups),
        "planted_copies_grouped": round(together / len(sources), 4),
        "peak_rss_mb": round(peak_rss_mb()),
        "threads": args.threads,
        "load": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--photos", type=Path, default=Path("/work/data/eval/photos"))
    q.add_argument("--distractors", type=Path, required=True)
    q.add_argument("--model", default="mobilenet_v2", help="the index's model (the bands' own)")
    q.add_argument("--json", action="store_true")
    q.add_argument("--adapt", action="store_true", help="lookalike adapt the index first")
    s = sub.add_parser("scale")
    s.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    s.add_argument("--data", type=Path, default=Path("/work/data/eval"))
    s.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookalike-scale")
    s.add_argument("--spread", type=float, default=1.5)
    s.add_argument("-k", type=int, default=10)
    # OPQ's training alone took 15 CPU minutes at 100k (load 10-14): IVF-SQ8 by default
    s.add_argument("--index", choices=("ivf-sq8", "opq-pq"), default="ivf-sq8")
    s.add_argument("--nprobe", type=int, default=8)
    s.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    s.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(f"load average {load()}")
    quality(args) if args.what == "quality" else scale(args)


if __name__ == "__main__":
    main()
