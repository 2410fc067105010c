"""Cold start of a search: the ONNX path without PyTorch, against the same search with it.

    python benchmarks/cold_start.py [--repeat 5]

Builds (or reuses) the demo index (``lookalike demo --quiet``, under ``$LOOKALIKE_CACHE`` like
the CLI) and runs one search so that the model's ONNX file is cached. Then times, in fresh
interpreters, ``--repeat`` times each and taking turns so that a change of load hits all alike:

- ``python -c pass``: the interpreter alone;
- ``import torch``: what the old search path paid before anything else;
- a cold ``lookalike search`` of one image, which must not import PyTorch (checked);
- the same search with ``import torch`` forced first: the old path's cost, same runtime.

Prints median and min of each, the ratio of the two searches and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

NO_TORCH = 3  # exit code of the torch-free search if PyTorch got imported after all


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lookalike.present.cli", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def search_code(index: Path, query: Path, prelude: str) -> str:
    args = ["search", "--index", str(index), "-k", "5", str(query)]
    return (
        f"{prelude}import sys\nfrom lookalike.present.cli import main\ncode = main({args!r})\n"
        f"sys.exit(code or ({NO_TORCH} if 'torch' in sys.modules else 0))\n"
    )


def timed(code: str, allowed: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if done.returncode not in allowed:
        raise SystemExit(f"{code!r} exited {done.returncode}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    cli("demo", "--quiet")
    index = Path(cli("demo", "--print-index").strip())
    query = sorted((index.parent / "queries").glob("*.jpg"))[0]
    cli("search", "--index", str(index), str(query))  # caches the ONNX model, if need be
    runs = {
        "python -c pass": ("pass", (0,)),
        "python -c 'import torch'": ("import torch", (0,)),
        "search, no PyTorch (new)": (search_code(index, query, ""), (0,)),
        # the old path imported torch anyway: the exit code then says so, as expected
        "search after import torch (old)": (search_code(index, query, "import torch\n"), (3,)),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for _ in range(args.repeat):
        for name, (code, allowed) in runs.items():
            times[name].append(timed(code, allowed))
    load_after = os.getloadavg()

    print(
        f"demo index {index}, query {query.name}, {args.repeat} runs each, {os.cpu_count()} cores"
    )
    print(f"{'':34} {'median':>8} {'min':>8}")
    for name, seconds in times.items():
        print(f"{name:34} {statistics.median(seconds):7.3f}s {min(seconds):7.3f}s")
    new, old = (statistics.median(times[k]) for k in list(runs)[2:])
    print(f"old / new search (medians): {old / new:.2f}x")
    print(
        "load average (1, 5, 15 min): before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )


if __name__ == "__main__":
    main()
