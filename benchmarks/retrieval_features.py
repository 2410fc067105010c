"""Which retrieval features make the best default for mobilenet_v2?

    python benchmarks/retrieval_features.py /work/data/eval [--cache DIR] [--model NAME]

Pooling (gap, mac, gem p=3) x whitening (none / centring only / learned on the evaluated set
itself) x scales
(1 / 1, 1/sqrt2, sqrt2 averaged) x preprocessing (letterbox, centre crop, squash), measured as
clipart and icons MAP@R and R@1 (every image queries all the others) and copy-detection
recall@1 on photos (the originals plus clipart as distractors are indexed; the queries are the
originals with each lookalike.evaluate.edits edit, seed 0).

SPoC is not a separate row: it is average pooling, the same vector as gap after L2
normalisation. Whitening is learned on the same vectors it is evaluated on (for copy detection,
on the indexed originals and distractors), as an index would learn it from its own collection;
queries are not part of it.

The 2-core machine allows about 6 network passes a second, so by default the labelled sets are
cut to the first 24 drawings of each clipart category and every third icon name, and copy
detection to the first 28 photos (x 12 edits = 336 queries; distractors = the clipart used).

Each image is decoded once and every (preprocessing, scale) feature map is pooled all ways, so
the costly part is 5.5 network passes per image; pooled descriptors are cached (npz) under
``--cache`` so a second run only recomputes the table.

``--rerank`` prints the second table instead (letterbox passes only, 3 per image): what the
search does with a shortlist, on top of the global vectors (GAP, R-MAC, GeM, multi-scale):
alpha-query expansion (alpha-QE, Radenovic et al. 2018: the query plus its top n hits
weighted by similarity**3, searched again), database-side augmentation (DBA: every indexed
vector replaced by the same weighted mean of its n nearest, itself first, before searching),
and spatial verification of local features (:mod:`lookalike.search.spatial`, the first 100
hits), alone and combined. MAP@R and R@1 are the mean and spread (standard deviation) over
``--subsets`` seeded halves of the labels (every image of a drawn label queries the others
drawn); copy R@1 over the photos' edited copies as above; ms per query is the re-ranking
work only (the global search is the same for every row), one thread, with the load average;
bytes per image is what the index stores beyond its vector.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lookalike.decode.image import decode_image, letterbox_resize
from lookalike.embed.embedder import TorchEmbedder, average_scales
from lookalike.embed.local_features import STAGE, LocalFeatures, local_features
from lookalike.embed.pooling import POOLINGS, gem, spoc
from lookalike.embed.registry import create_embedder
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.edits import EDITS, apply_edit
from lookalike.evaluate.metrics import evaluate_ranking, evaluate_vectors, recall_at_k
from lookalike.normalise import l2_normalise
from lookalike.search.spatial import SHORTLIST, rerank
from lookalike.store.whitening import Whitening, learn_centring, learn_whitening

POOLS = ("gap", "mac", "gem")
# What is learned from the collection itself, beside "no": its mean, which every vector is
# centred on (then L2-normalised again), or PCA-whitening.
WHITENINGS: dict[str, Callable[[np.ndarray], Whitening]] = {
    "centre": learn_centring,
    "yes": learn_whitening,
}
MULTI = (1.0, 2**-0.5, 2**0.5)
# (preprocessing mode, scale): every feature map the table needs.
PASSES = [("letterbox", s) for s in MULTI] + [("crop", 1.0), ("squash", 1.0)]
BATCH = 32

Images = Callable[[], Iterator[Image.Image]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, nargs="?", default=Path("/work/data/eval"))
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-features"
    )
    parser.add_argument(
        "--clipart-per-label", type=int, default=24, help="first N drawings of each category"
    )
    parser.add_argument("--icons-every", type=int, default=3, help="every Nth icon name")
    parser.add_argument("--model", default="mobilenet_v2", help="a registered model's network")
    parser.add_argument("--photos", type=int, default=28, help="first N photos as originals")
    parser.add_argument(
        "--rerank", action="store_true", help="the re-ranking table (QE, DBA, spatial) instead"
    )
    parser.add_argument("--subsets", type=int, default=5, help="seeded label halves (--rerank)")
    parser.add_argument(
        "--only",
        choices=("clipart", "icons", "photos", "edited"),
        action="append",
        help="only compute and cache these sets' features (to run sets in parallel), no table",
    )
    args = parser.parse_args()
    base = create_embedder(args.model, runtime="torch")
    assert isinstance(base, TorchEmbedder)
    embedders = {
        mode: replace_mode(args.model, base, mode) for mode in ("letterbox", "crop", "squash")
    }
    cache = args.cache / args.model
    decode_side = max(embedders[m].preprocess.decode_side * s for m, s in PASSES)
    side = round(decode_side)

    def files(paths: Sequence[Path]) -> Images:
        return lambda: (decode_image(p, max_side=side).image for p in paths)

    clipart = first_per_label(load_labelled_folder(args.data / "clipart"), args.clipart_per_label)
    icon_names = sorted({label for _, label in load_labelled_folder(args.data / "icons")})
    kept = set(icon_names[:: args.icons_every])
    icons = [(p, label) for p, label in load_labelled_folder(args.data / "icons") if label in kept]
    photos = [p for p, _ in load_labelled_folder(args.data / "photos")][: args.photos]

    def edited() -> Iterator[Image.Image]:
        for path in photos:
            original = decode_image(path).image
            for name in EDITS:
                yield shrink(apply_edit(name, original, seed=0), side)

    sets: dict[str, tuple[Images, int]] = {
        "clipart": (files([p for p, _ in clipart]), len(clipart)),
        "icons": (files([p for p, _ in icons]), len(icons)),
        "photos": (files(photos), len(photos)),
        "edited": (edited, len(photos) * len(EDITS)),
    }
    labelled = {"clipart": [lab for _, lab in clipart], "icons": [lab for _, lab in icons]}
    if args.rerank:
        started = time.perf_counter()
        found = {
            name: rerank_features(name, images, n, embedders["letterbox"], cache)
            for name, (images, n) in sets.items()
        }
        print(
            f"# features in {time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )
        rerank_table(found, labelled, len(EDITS), args.subsets)
        return
    started = time.perf_counter()
    pooled = {
        name: features(name, images, n, embedders, cache)
        for name, (images, n) in sets.items()
        if not args.only or name in args.only
    }
    if args.only:
        return
    print(
        f"# features in {time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}, "
        f"torch threads {torch.get_num_threads()}",
        file=sys.stderr,
    )
    clipart_labels = [label for _, label in clipart]
    icon_labels = [label for _, label in icons]
    photo_of_query = np.repeat(np.arange(len(photos)), len(EDITS))

    rows = [
        (pool, white, multi, "letterbox")
        for pool in POOLS
        for multi in (False, True)
        for white in ("no", *WHITENINGS)
    ]
    rows += [
        (pool, white, False, mode)
        for mode in ("crop", "squash")
        for pool in POOLS
        for white in ("no", *WHITENINGS)
    ]
    header = (
        f"| {'pooling':7} | {'whiten':6} | {'scales':6} | {'preprocess':10} | clipart mAP@R | "
        "clipart R@1 | icons mAP@R | icons R@1 | photos copy R@1 |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for pool, white, multi, mode in rows:

        def vectors(name: str, p: str = pool, mu: bool = multi, m: str = mode) -> np.ndarray:
            scales = MULTI if mu else (1.0,)
            return average_scales([pooled[name][(m, s)][p] for s in scales])

        cells = []
        for name, labels in (("clipart", clipart_labels), ("icons", icon_labels)):
            v = vectors(name)
            if white != "no":
                v = WHITENINGS[white](v).apply(v)
            report = evaluate_vectors(v, labels)
            cells += [report.map_at_r, report.r_at_1]
        indexed = np.concatenate([vectors("photos"), vectors("clipart")])
        queries = vectors("edited")
        if white != "no":
            whitening = WHITENINGS[white](indexed)
            indexed, queries = whitening.apply(indexed), whitening.apply(queries)
        top = np.argmax(queries @ indexed.T, axis=1)
        cells.append(recall_at_k((top == photo_of_query)[:, None], 1))
        label = "gap/spoc" if pool == "gap" else ("gem p=3" if pool == "gem" else pool)
        print(
            f"| {label:7} | {white:6} | {'1,.71,1.41' if multi else '1':6} "
            f"| {mode:10} | " + " | ".join(f"{c:.3f}" for c in cells) + " |",
            flush=True,
        )


def first_per_label(items: list[tuple[Path, str]], n: int) -> list[tuple[Path, str]]:
    seen: dict[str, int] = {}
    out = []
    for path, label in items:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= n:
            out.append((path, label))
    return out


def replace_mode(name: str, base: TorchEmbedder, mode: str) -> TorchEmbedder:
    """The same backbone with another preprocessing mode."""
    return TorchEmbedder(name, base.backbone, replace(base.preprocess, mode=mode))


def shrink(image: Image.Image, side: int) -> Image.Image:
    """As the decoder would hand an edited image over: longer side at most ``side``."""
    return letterbox_resize(image, side) if max(image.size) > side else image


def features(
    name: str,
    images: Images,
    n: int,
    embedders: dict[str, TorchEmbedder],
    cache: Path,
) -> dict[tuple[str, float], dict[str, np.ndarray]]:
    """{(mode, scale): {pooling: float32 (n, 1280) un-normalised pooled descriptors}}."""
    path = cache / f"{name}-{n}.npz"
    if path.exists():
        with np.load(path) as archive:
            return {(m, s): {p: archive[f"{m}|{s}|{p}"] for p in POOLS} for m, s in PASSES}
    out: dict[tuple[str, float], dict[str, list[np.ndarray]]] = {
        key: {p: [] for p in POOLS} for key in PASSES
    }
    batch: list[Image.Image] = []
    done = 0

    def flush() -> None:
        for mode, scale in PASSES:
            feature_map = embedders[mode].feature_map(batch, scale)
            for p in POOLS:
                out[(mode, scale)][p].append(POOLINGS[p](feature_map).numpy())

    for image in images():
        batch.append(image)
        if len(batch) == BATCH:
            flush()
            done += len(batch)
            batch = []
            print(f"# {name}: {done}/{n}", file=sys.stderr, flush=True)
    if batch:
        flush()
    result = {key: {p: np.concatenate(v) for p, v in pools.items()} for key, pools in out.items()}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{m}|{s}|{p}": result[(m, s)][p] for m, s in PASSES for p in POOLS})
    return result


# The re-ranking table (--rerank)

Features = dict[str, np.ndarray]


def rmac(feature_map: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """R-MAC (Tolias et al. 2016): MAC of square regions at ``levels`` scales (about 40%
    overlap), each L2-normalised, summed with the global MAC: (n, c, h, w) -> (n, c)."""
    _, _, h, w = feature_map.shape
    regions = [feature_map.amax(dim=(2, 3))]
    for level in range(1, levels + 1):
        side = max(1, round(2 * min(h, w) / (level + 1)))
        ys = sorted({round(y) for y in np.linspace(0, h - side, level + 1)})
        xs = sorted({round(x) for x in np.linspace(0, w - side, level + 1)})
        regions += [
            feature_map[:, :, y : y + side, x : x + side].amax(dim=(2, 3)) for y in ys for x in xs
        ]
    return torch.stack([torch.nn.functional.normalize(r, dim=1) for r in regions]).sum(0)


def rerank_features(
    name: str, images: Images, n: int, embedder: TorchEmbedder, cache: Path
) -> Features:
    """Letterbox passes: GAP at each of MULTI's scales, R-MAC and GeM at scale 1, and the
    local features of the scale-1 pass (positions float16 (n, KEEP, 2), descriptors float16
    (n, KEEP, c)), as the index stores them."""
    path = cache / f"rerank-{name}-{n}.npz"
    if path.exists():
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    out: dict[str, list[np.ndarray]] = {}
    batch: list[Image.Image] = []

    def flush() -> None:
        with torch.inference_mode():
            final, (stage,) = embedder.backbone.forward_intermediates(
                torch.from_numpy(embedder.batch(batch)), [STAGE]
            )
            found = {"gap": spoc(final), "rmac": rmac(final), "gem": gem(final)}
            for scale in MULTI[1:]:
                found[f"gap{scale:.2f}"] = spoc(embedder.feature_map(batch, scale))
        local = local_features(stage.numpy())
        found_np = {k: v.numpy() for k, v in found.items()}
        found_np["positions"] = np.stack([f.positions for f in local])
        found_np["descriptors"] = np.stack([f.descriptors for f in local])
        for key, value in found_np.items():
            out.setdefault(key, []).append(value)

    done = 0
    for image in images():
        batch.append(image)
        if len(batch) == BATCH:
            flush()
            done += len(batch)
            batch = []
            print(f"# {name}: {done}/{n}", file=sys.stderr, flush=True)
    if batch:
        flush()
    result = {key: np.concatenate(v) for key, v in out.items()}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


@dataclass(frozen=True)
class Method:
    """One row: a global vector, then DBA (n nearest), spatial re-ranking, alpha-QE (n hits)."""

    vector: str  # "gap", "rmac", "gem" or "multi" (GAP averaged over MULTI's scales)
    dba: int = 0
    spatial: bool = False
    qe: int = 0

    @property
    def label(self) -> str:
        parts = [self.vector] + [f"DBA {self.dba}"] * bool(self.dba)
        parts += ["spatial"] * self.spatial + [f"QE {self.qe}"] * bool(self.qe)
        return " + ".join(parts)


METHODS = [
    Method("gap"),
    Method("gap", qe=1),
    Method("gap", qe=2),
    Method("gap", dba=3),
    Method("gap", dba=5),
    Method("gap", spatial=True),
    Method("gap", spatial=True, qe=2),
    Method("gap", dba=5, spatial=True),
    Method("multi"),
    Method("multi", spatial=True),
    Method("rmac"),
    Method("rmac", spatial=True),
    Method("gem"),
    Method("gem", spatial=True),
]


def global_vectors(features: Features, vector: str) -> np.ndarray:
    if vector == "multi":
        return average_scales([features["gap"]] + [features[f"gap{s:.2f}"] for s in MULTI[1:]])
    return l2_normalise(features[vector].astype(np.float32))


def weighted_mean(vectors: np.ndarray, ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Each row's listed vectors weighted by similarity**3, summed and L2-normalised."""
    weights = np.maximum(sims, 0) ** 3
    return l2_normalise(np.einsum("qk,qkd->qd", weights, vectors[ids]))


def run_method(
    method: Method,
    queries: np.ndarray,
    database: np.ndarray,
    local_q: list[LocalFeatures],
    local_db: list[LocalFeatures],
    depth: int,
    exclude_self: bool,
) -> tuple[np.ndarray, float]:
    """(ids (n, depth) into the database, best first; seconds of re-ranking work per query)."""
    if method.dba:
        sims = database @ database.T
        near = np.argsort(-sims, axis=1, kind="stable")[:, : method.dba]
        database = weighted_mean(database, near, np.take_along_axis(sims, near, 1))
        if exclude_self:  # the queries are the indexed images: their stored vectors changed
            queries = database
    shortlist = max(depth, SHORTLIST)

    def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = q @ database.T
        if exclude_self:
            np.fill_diagonal(sims, -np.inf)
        ids = np.argsort(-sims, axis=1, kind="stable")[:, :shortlist]
        return ids, np.take_along_axis(sims, ids, 1)

    ids, sims = search(queries)
    tick = time.perf_counter()
    if method.spatial:
        for i in range(len(ids)):
            head = ids[i, :SHORTLIST]
            order = rerank(sims[i, :SHORTLIST], local_q[i], [local_db[j] for j in head])
            ids[i, :SHORTLIST], sims[i, :SHORTLIST] = head[order], sims[i, :SHORTLIST][order]
    if method.qe:
        expanded = l2_normalise(
            queries + weighted_mean(database, ids[:, : method.qe], sims[:, : method.qe])
        )
        ids, _ = search(expanded)
    seconds = (time.perf_counter() - tick) / len(ids)
    return ids[:, :depth], seconds


def as_local(features: Features) -> list[LocalFeatures]:
    return [
        LocalFeatures(p, d)
        for p, d in zip(features["positions"], features["descriptors"], strict=True)
    ]


def rerank_table(
    found: dict[str, Features], labels: dict[str, list[str]], edits: int, subsets: int
) -> None:
    local = {name: as_local(f) for name, f in found.items()}
    extra = {
        False: 0,
        True: int(
            found["clipart"]["positions"][0].nbytes + found["clipart"]["descriptors"][0].nbytes
        ),
    }
    print(
        "| method | clipart MAP@R | clipart R@1 | icons MAP@R | icons R@1 | copy R@1 | "
        "ms/query (load) | bytes/image |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method in METHODS:
        cells, per_query = [], []
        for name in ("clipart", "icons"):
            vectors = global_vectors(found[name], method.vector)
            names = np.asarray(labels[name])
            maps, r1s = [], []
            for seed in range(subsets):
                rng = np.random.default_rng(seed)
                unique = np.unique(names)
                chosen = rng.choice(unique, size=max(2, len(unique) // 2), replace=False)
                keep = np.flatnonzero(np.isin(names, chosen))
                _, counts = np.unique(names[keep], return_counts=True)
                depth = min(len(keep) - 1, max(100, int(counts.max()) - 1))
                v = vectors[keep]
                ids, seconds = run_method(
                    method,
                    v,
                    v,
                    [local[name][i] for i in keep],
                    [local[name][i] for i in keep],
                    depth,
                    exclude_self=True,
                )
                report = evaluate_ranking(ids, list(names[keep]))
                maps.append(report.map_at_r)
                r1s.append(report.r_at_1)
                per_query.append(seconds)
            cells += [
                f"{np.mean(maps):.4f} ± {np.std(maps):.4f}",
                f"{np.mean(r1s):.3f} ± {np.std(r1s):.3f}",
            ]
        database = np.concatenate(
            [
                global_vectors(found["photos"], method.vector),
                global_vectors(found["clipart"], method.vector),
            ]
        )
        ids, seconds = run_method(
            method,
            global_vectors(found["edited"], method.vector),
            database,
            local["edited"],
            local["photos"] + local["clipart"],
            10,
            exclude_self=False,
        )
        per_query.append(seconds)
        truth = np.repeat(np.arange(len(found["photos"]["gap"])), edits)
        cells.append(f"{recall_at_k(ids == truth[:, None], 1):.3f}")
        cells.append(f"{1000 * np.mean(per_query):.1f} ({os.getloadavg()[0]:.1f})")
        cells.append(str(extra[method.spatial]))
        print(f"| {method.label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
