"""Fuzz image metadata for longer than the suite does, and count the inputs that fail.

    python benchmarks/metadata_fuzz.py [--seconds 60] [--seed 0]

The inputs come from ``tests/decode/metadata_fuzz.py`` (damaged EXIF, JPEG APP segments, PNG
text/iCCP/eXIf chunks, WebP EXIF/ICCP chunks), the same generator the test suite runs for a
few seconds. A failure is any outcome but decoded pixels with well-typed metadata or an
``ImageError`` of one line; each kind of failure is printed once with an example.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

# The generator is test code; this script is its longer run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "decode"))

from metadata_fuzz import check, fuzz_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    failures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    runs = decoded = 0
    deadline = time.monotonic() + args.seconds
    for item in fuzz_inputs(args.seed):
        if time.monotonic() > deadline:
            break
        runs += 1
        outcome = check(item)
        decoded += outcome.decoded
        if outcome.problem:
            kind = outcome.problem.split()[0]  # the exception's type, or the bad field
            failures[kind] += 1
            examples.setdefault(kind, f"{item.name}: {outcome.problem}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{runs} inputs in {args.seconds:.0f} s (seed {args.seed}, load average {load})")
    print(f"{decoded} decoded, {runs - decoded} refused or failed")
    print(f"{sum(failures.values())} failed, {len(failures)} kinds of failure")
    for kind, n in failures.most_common():
        print(f"  {n:6d}  {examples[kind][:160]}")


if __name__ == "__main__":
    main()
