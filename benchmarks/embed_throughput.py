"""Embedding throughput on large real photographs: decode, model, end to end, naive baseline.

    python benchmarks/embed_throughput.py [PHOTOS] [--count 96] [--model mobilenet_v2]

Makes ``--count`` (64) large JPEGs (3000x2000, about 6 megapixels, quality 90) from the real photos
in PHOTOS (default: /work/data/eval/photos, else scikit-image's bundled photos), upscaled with
a little sensor-like noise so they compress like camera files, then prints in one run:

- decode-only: ``decode_image`` with JPEG draft mode, one thread;
- model-only: preprocessing and inference on already decoded images, in batches;
- end-to-end: files to vectors through the indexing pipeline's ``LocalRunner`` (decode threads
  + batched inference);
- naive baseline: full decode, PyTorch eager, one image at a time (as simple CNN search tools);

with the ratios, and the peak memory (RSS).
Nothing is asserted; the machine's load is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.embed.onnx import default_threads
from lookalike.embed.registry import create_embedder
from lookalike.files.walk import walk_images
from lookalike.pipeline import EmbedderSpec, LocalRunner, Mapper
from lookalike.pipeline.runner import default_workers

SIZE = (3000, 2000)


def source_photos(folder: Path) -> list[Image.Image]:
    paths = sorted(e.path for e in walk_images([folder])) if folder.is_dir() else []
    if paths:
        return [Image.open(p).convert("RGB") for p in paths]
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "immunohistochemistry")
    return [Image.fromarray(getattr(data, n)()).convert("RGB") for n in names]


def make_large_jpegs(photos: list[Image.Image], folder: Path, count: int) -> list[Path]:
    """``count`` 3000x2000 JPEGs: each a real photo upscaled, with mild noise, quality 90.

    Files already in ``folder`` (from an earlier run with ``--keep``) are reused.
    """
    noise = np.random.default_rng(0).normal(0, 4, (SIZE[1], SIZE[0], 3)).astype(np.int16)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:04d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        photo = photos[i % len(photos)]
        if i // len(photos) % 2:  # later rounds: mirrored, so files differ
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        big = np.asarray(photo.resize(SIZE, Image.Resampling.BICUBIC), dtype=np.int16) + noise
        Image.fromarray(big.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return paths


def rate(n: int, run: Callable[[], object]) -> float:
    """Images per second of ``run()``, which processes ``n`` images."""
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="?", type=Path, default=Path("/work/data/eval/photos"))
    parser.add_argument("--count", type=int, default=64, help="large JPEGs to make")
    parser.add_argument("--naive-count", type=int, default=24, help="images for the baseline")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the JPEGs in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = make_large_jpegs(source_photos(args.photos), folder, args.count)
        megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} JPEGs of {SIZE[0]}x{SIZE[1]} px, {megabytes:.1f} MB each on average")
        print(f"load average before: {os.getloadavg()[0]:.2f}, cores: {os.cpu_count()}")

        embedder = create_embedder(args.model)
        size, n, batch = embedder.image_size, len(paths), args.batch_size
        workers = default_workers(n) if args.workers is None else args.workers
        embedder.embed([decode_image(paths[0], size).image] * batch)  # export, warm up

        decoded: list[Image.Image] = []
        decode = rate(n, lambda: decoded.extend(decode_image(p, size).image for p in paths))

        def model_only() -> None:
            for start in range(0, n, batch):
                embedder.embed(decoded[start : start + batch])

        model = rate(n, model_only)
        entries = list(walk_images([folder]))
        mapper = Mapper(EmbedderSpec(args.model), embedder)
        runner = LocalRunner(workers)
        end_to_end = rate(n, lambda: [b for b in runner.map(entries, mapper, batch)])

        naive_model = create_embedder(args.model, runtime="torch")
        few = paths[: args.naive_count]

        def naive() -> None:
            for path in few:
                with Image.open(path) as image:
                    naive_model.embed([image.convert("RGB")])

        baseline = rate(len(few), naive)

    print(f"model {embedder.model_id} ({type(embedder).__name__}), batch {batch}")
    print(f"decode threads {workers}, inference threads {default_threads()}")
    print(f"decode-only   {decode:7.1f} images/s  (draft mode, 1 thread)")
    print(f"model-only    {model:7.1f} images/s  (preprocess + inference, decoded images)")
    print(f"end-to-end    {end_to_end:7.1f} images/s  = {end_to_end / model:.2f} x model-only")
    print(f"naive         {baseline:7.1f} images/s  (full decode, PyTorch eager, 1 at a time)")
    print(f"end-to-end / naive = {end_to_end / baseline:.1f} x")
    print(f"peak RSS {peak_rss_mb():.0f} MB (one process: decoding runs in threads)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
