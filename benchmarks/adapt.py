"""What an index learns from its own images: none, centring, or adaptation (``lookalike adapt``).

    python benchmarks/adapt.py DATA_DIR [--model M ...] [--learn none centre adapt]

DATA_DIR holds the sets of ``shared/datasets/build.py`` (clipart, icons, photos). Each row
goes through the real path, as ``lookalike eval`` does: a temporary index of the set made by
``Index.add``, then what the index learns (``--centre``: ``Index.learn_whitening(
centre_only=True)``; ``--adapt``: ``lookalike.train.adapt.adapt_index`` with its defaults),
then every image queries all the others with spatial re-ranking on. Prints MAP@R and R@1 on
clipart and icons, copy-detection R@1 (the 56 photos x 12 edits among the photos and the
clip art), the seconds each took, and the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from lookalike.evaluate.retrieval import copy_detection, evaluate_folder

LEARN = ("none", "centre", "adapt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder build.py wrote")
    parser.add_argument("--model", nargs="+", default=["mobilenet_v2", "efficientnet_lite0_gem"])
    parser.add_argument("--learn", nargs="+", choices=LEARN, default=list(LEARN))
    args = parser.parse_args()
    print(
        "| model | learned | clipart MAP@R | R@1 | icons MAP@R | R@1 | copy R@1 | seconds "
        "(load) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        flush=True,
    )
    for model in args.model:
        for learn in args.learn:
            flags = {
                "centre": learn == "centre",
                "adapt": learn == "adapt",  # False: never, not "where a new index would"
            }
            tick = time.perf_counter()
            cells = []
            for name in ("clipart", "icons"):
                report = evaluate_folder(args.data / name, model, **flags).report
                cells += [f"{report.map_at_r:.4f}", f"{report.r_at_1:.3f}"]
            copies = copy_detection(args.data / "photos", args.data / "clipart", model, **flags)
            cells.append(f"{copies.overall[1]:.3f}")
            seconds = time.perf_counter() - tick
            print(
                f"| {model} | {learn} | " + " | ".join(cells) + f" | {seconds:.0f} "
                f"({os.getloadavg()[0]:.1f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
