"""How well do words find images? Each label's name as a text query, on the labelled sets.

    python benchmarks/text_search.py [DATA] [--model mobilenet_v2] [--sets clipart icons]

For each set under DATA (default /work/data/eval; built by shared/datasets/build.py), builds
a temporary index with ``--model`` through ``Index.add`` (as a user would, classes stored at
indexing), then queries each label's name, underscores and hyphens as spaces
("animals_mammals" -> "animals mammals"), ranking every image. Prints MAP@R and R@1 over
the labels against a random ranking (the mean of 20 seeded shuffles), the latency of one
text query (median, after a first query that loads the sentence encoder), and the labels
where the words fail (the first hit is of another label and MAP@R < 0.05), with what
they matched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike import Index
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.metrics import map_at_r, r_at_1
from lookalike.search.query import SearchResult, TextQuery

SHUFFLES = 20
FAILED_BELOW = 0.05  # a label's MAP@R under this, with a wrong first hit, is a failure


def words_of(label: str) -> str:
    return label.replace("_", " ").replace("-", " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--sets", nargs="+", default=["clipart", "icons"])
    args = parser.parse_args()
    print(f"model {args.model}; load average {os.getloadavg()[0]:.2f}, cores {os.cpu_count()}")
    print("| set | labels | images | MAP@R | R@1 | random MAP@R | random R@1 | ms/query |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    failures: dict[str, list[str]] = {}
    for name in args.sets:
        items = load_labelled_folder(args.data / name)
        label_of = {os.path.abspath(path): label for path, label in items}
        labels = sorted(set(label_of.values()))
        with (
            tempfile.TemporaryDirectory() as tmp,
            Index.create(Path(tmp) / "index", args.model) as index,
        ):
            index.add([args.data / name], batch_size=32, adapt=False)
            n = len(index)
            index.search_many([TextQuery("warm up")], k=1)  # loads the sentence encoder
            results: list[SearchResult] = []
            took = []
            for label in labels:
                started = time.perf_counter()
                results += index.search_many([TextQuery(words_of(label))], k=n)
                took.append(time.perf_counter() - started)
        counts = [sum(1 for v in label_of.values() if v == label) for label in labels]
        relevance = [
            [label_of[h.path] == label for h in result.hits]
            for label, result in zip(labels, results, strict=True)
        ]
        rng = np.random.default_rng(0)
        shuffled = [
            [rng.permutation(list(label_of.values())) for _ in labels] for _ in range(SHUFFLES)
        ]
        random_relevance = [
            [[x == label for x in order] for label, order in zip(labels, orders, strict=True)]
            for orders in shuffled
        ]
        random_map = statistics.mean(map_at_r(r, counts) for r in random_relevance)
        random_r1 = statistics.mean(r_at_1(r) for r in random_relevance)
        print(
            f"| {name} | {len(labels)} | {n} | {map_at_r(relevance, counts):.4f} | "
            f"{r_at_1(relevance):.3f} | {random_map:.4f} | {random_r1:.3f} | "
            f"{1000 * statistics.median(took):.0f} |"
        )
        for label, row, count, result in zip(labels, relevance, counts, results, strict=True):
            if not row[0] and map_at_r([row], [count]) < FAILED_BELOW:
                matched = result.matched
                said = (
                    ", ".join(sorted({m.name for m in matched.matches})[:3]) or "nothing"
                    if matched
                    else "?"
                )
                failures.setdefault(name, []).append(f"{label} ({said})")
    for name, failed in failures.items():
        print(f"\n{name}: {len(failed)} labels fail (first hit wrong, MAP@R < {FAILED_BELOW}):")
        print("  " + "; ".join(failed))


if __name__ == "__main__":
    main()
