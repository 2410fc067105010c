"""Indexing rate and the cost of an unchanged re-run, through the real CLI.

    python benchmarks/index_rate.py [FOLDER ...] [--copies N]

Indexes the folders (default: the shared evaluation sets under /work/data/eval, about 3,000
real images) into a fresh index, then re-runs over the unchanged folders. With ``--copies N``
the folders are first mirrored N times with hard links (distinct paths, no extra disk), so the
re-run can be measured at 10,000+ files. Prints images/s and seconds; nothing is asserted.
The first run leaves out the adaptation an index of 500 or more images ends with
(``--no-adapt``; its cost is ``benchmarks/adapt.py``'s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lookalike.files.walk import walk_images


def lookalike(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lookalike.present.cli", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def mirror(folders: list[Path], into: Path, copies: int) -> list[Path]:
    roots = []
    for copy in range(copies):
        root = into / f"copy{copy}"
        for folder in folders:
            for entry in walk_images([folder]):
                target = root / folder.name / os.path.relpath(entry.path, folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(entry.path, target)
        roots.append(root)
    return roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path("/work/data/eval")])
    parser.add_argument("--copies", type=int, default=1, help="hard-linked mirrors of the folders")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = mirror(args.folders, Path(tmp), args.copies) if args.copies > 1 else args.folders
        files = sum(1 for _ in walk_images(roots))
        index = str(Path(tmp) / "index")
        print(f"files: {files} in {', '.join(map(str, args.folders))} (x{args.copies})")
        print(f"load average before: {os.getloadavg()[0]:.2f}, cores: {os.cpu_count()}")
        first = lookalike("index", *map(str, roots), "--index", index, "--quiet", "--no-adapt")
        print(f"first run:     {first:7.1f} s  {files / first:7.1f} images/s (CLI start included)")
        rerun = lookalike("index", *map(str, roots), "--index", index, "--quiet")
        print(
            f"unchanged re-run: {rerun:5.2f} s  ({files / rerun:,.0f} files/s, CLI start included)"
        )
        start = lookalike("info", "--index", index)
        print(f"CLI start + info: {start:5.2f} s  (the fixed cost inside both figures)")


if __name__ == "__main__":
    main()
