"""Images/s of the local and the Ray executors indexing the same folder, and Ray's start-up.

    python benchmarks/ray_embed.py [PATH] [--count 300] [--actors 1 2] [--batch-size 32]

Takes ``--count`` image files spread evenly over PATH (default /work/data/eval: real photos,
clip art and icons), copies them into a temporary folder and indexes it into fresh indexes
with the default model: once with the local executor, then with a local Ray (started once,
its start-up timed) for each actor count, each twice. A run is ``Index.add`` from the walk to
the last commit; a Ray run includes starting its actor pool and each actor building its model
(from the exported ONNX file, as a node of a cluster would); a run of a single batch
shows that fixed cost. The load average is printed
beside every figure; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from lookalike import Index
from lookalike.files.walk import walk_images
from lookalike.pipeline import LocalRunner, Runner
from lookalike.pipeline.ray_runner import RayRunner


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sample(root: Path, count: int, folder: Path) -> int:
    """Copy ``count`` image files spread over ``root`` into ``folder``; returns how many."""
    paths = sorted(e.path for e in walk_images([root]))
    step = max(1, len(paths) // count)
    chosen = paths[::step][:count]
    folder.mkdir(parents=True)
    for i, path in enumerate(chosen):
        shutil.copyfile(path, folder / f"{i:05d}{Path(path).suffix}")
    return len(chosen)


def timed_add(work: Path, name: str, folder: Path, runner: Runner, batch_size: int) -> float:
    """Seconds to index ``folder`` into a fresh index (the model built before the clock)."""
    with Index.create(work / name) as index:
        start = time.perf_counter()
        report = index.add([folder], runner=runner, batch_size=batch_size, adapt=False)
        seconds = time.perf_counter() - start
    print(
        f"  {name:<18} {report.added:>5} added {len(report.skipped):>3} skipped  "
        f"{seconds:6.2f} s  {report.added / seconds:6.1f} images/s  (load {load()})",
        flush=True,
    )
    return report.added / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="ray-embed-") as tmp:
        work = Path(tmp)
        folder = work / "images"
        n = sample(args.path, args.count, folder)
        one_batch = work / "one-batch"
        sample(folder, args.batch_size, one_batch)
        print(f"{n} images from {args.path}, {cores} cores, batch {args.batch_size}")
        with Index.create(work / "warm-up") as index:  # exports the ONNX file once
            index.add([folder], runner=LocalRunner(), batch_size=args.batch_size, adapt=False)
        timed_add(work, "local-one-batch", one_batch, LocalRunner(), args.batch_size)
        rates: dict[str, list[float]] = {}
        for run in (1, 2):
            rates.setdefault("local", []).append(
                timed_add(work, f"local-{run}", folder, LocalRunner(), args.batch_size)
            )
        with RayRunner() as ray:
            began = time.perf_counter()
            ray.start()
            print(f"  Ray start-up       {time.perf_counter() - began:6.2f} s  (load {load()})")
            for actors in args.actors:
                ray.actors = actors
                timed_add(work, f"ray-{actors}a-one-batch", one_batch, ray, args.batch_size)
                for run in (1, 2):
                    rates.setdefault(f"ray, {actors} actors", []).append(
                        timed_add(work, f"ray-{actors}a-{run}", folder, ray, args.batch_size)
                    )
            began = time.perf_counter()
            ray.close()
            print(f"  Ray shutdown       {time.perf_counter() - began:6.2f} s")
    best_local = max(rates["local"])
    print(f"\nbest of 2 (images/s; per core; against local), load {load()}:")
    for name, found in rates.items():
        best = max(found)
        print(f"  {name:<16} {best:6.1f}  {best / cores:6.1f}  {best / best_local:5.2f}x")


if __name__ == "__main__":
    main()
