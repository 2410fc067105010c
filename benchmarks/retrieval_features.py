"""Which retrieval features make the best default for mobilenet_v2?

    python benchmarks/retrieval_features.py /work/data/eval [--cache DIR]

Pooling (gap, mac, gem p=3) x whitening (none / learned on the evaluated set itself) x scales
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
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lookalike.decode.image import decode_image, letterbox_resize
from lookalike.embed.embedder import TorchEmbedder, average_scales
from lookalike.embed.pooling import POOLINGS
from lookalike.embed.registry import create_embedder
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.edits import EDITS, apply_edit
from lookalike.evaluate.metrics import evaluate_vectors, recall_at_k
from lookalike.store.whitening import learn_whitening

POOLS = ("gap", "mac", "gem")
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
    parser.add_argument("--photos", type=int, default=28, help="first N photos as originals")
    parser.add_argument(
        "--only",
        choices=("clipart", "icons", "photos", "edited"),
        action="append",
        help="only compute and cache these sets' features (to run sets in parallel), no table",
    )
    args = parser.parse_args()
    base = create_embedder("mobilenet_v2", runtime="torch")
    assert isinstance(base, TorchEmbedder)
    embedders = {mode: replace_mode(base, mode) for mode in ("letterbox", "crop", "squash")}
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
    started = time.perf_counter()
    pooled = {
        name: features(name, images, n, embedders, args.cache)
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
        for white in (False, True)
    ]
    rows += [
        (pool, white, False, mode)
        for mode in ("crop", "squash")
        for pool in POOLS
        for white in (False, True)
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
            if white:
                v = learn_whitening(v).apply(v)
            report = evaluate_vectors(v, labels)
            cells += [report.map_at_r, report.r_at_1]
        indexed = np.concatenate([vectors("photos"), vectors("clipart")])
        queries = vectors("edited")
        if white:
            whitening = learn_whitening(indexed)
            indexed, queries = whitening.apply(indexed), whitening.apply(queries)
        top = np.argmax(queries @ indexed.T, axis=1)
        cells.append(recall_at_k((top == photo_of_query)[:, None], 1))
        label = "gap/spoc" if pool == "gap" else ("gem p=3" if pool == "gem" else pool)
        print(
            f"| {label:7} | {'yes' if white else 'no':6} | {'1,.71,1.41' if multi else '1':6} "
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


def replace_mode(base: TorchEmbedder, mode: str) -> TorchEmbedder:
    """The same backbone with another preprocessing mode."""
    return TorchEmbedder("mobilenet_v2", base.backbone, replace(base.preprocess, mode=mode))


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


if __name__ == "__main__":
    main()
