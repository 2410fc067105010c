"""A picture of an evaluation: the precision-recall curve and the worst queries' results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.errors import ImageError
from lookalike.evaluate.metrics import map_at_r
from lookalike.evaluate.retrieval import FolderEvaluation

THUMB = 160
RELEVANT, WRONG = "#1a9850", "#d73027"


def precision_recall(evaluation: FolderEvaluation) -> tuple[np.ndarray, np.ndarray]:
    """Mean precision and mean recall at ranks 1..k over queries with R > 0 (recall is the
    share of the query's R same-label images found so far)."""
    relevance, r = evaluation.relevance, evaluation.n_relevant
    keep = r > 0
    found = np.cumsum(relevance[keep], axis=1)
    precision = found / np.arange(1, relevance.shape[1] + 1)
    recall = found / r[keep, None]
    return precision.mean(axis=0), recall.mean(axis=0)


def worst_queries(evaluation: FolderEvaluation, n: int) -> list[tuple[int, float]]:
    """(query id, its MAP@R) of the ``n`` lowest-scoring queries (R > 0), worst first."""
    relevance, r = evaluation.relevance, evaluation.n_relevant
    scores = [(int(i), map_at_r(relevance[i : i + 1], [int(r[i])])) for i in np.flatnonzero(r > 0)]
    return sorted(scores, key=lambda item: item[1])[:n]


def plot_evaluation(
    evaluation: FolderEvaluation, out: Path | str, worst: int = 6, hits: int = 6
) -> None:
    """Write a PNG: the precision-recall curve above a grid of the ``worst`` queries (first
    column), each followed by its first ``hits`` results framed green (same label) or red."""
    worst_list = worst_queries(evaluation, worst)
    columns = 1 + hits
    # A bare Figure on the Agg canvas: no pyplot, so no global backend or GUI is involved.
    figure = Figure(figsize=(1.6 * columns, 3.2 + 1.9 * len(worst_list)), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        1 + len(worst_list), columns, height_ratios=[3.2] + [1.9] * len(worst_list)
    )
    curve = figure.add_subplot(grid[0, 1:-1])
    precision, recall = precision_recall(evaluation)
    report = evaluation.report
    # From recall 0 at the first rank's precision, so the curve starts at the left edge.
    curve.plot(np.r_[0.0, recall], np.r_[precision[:1], precision], color="#4575b4")
    curve.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    curve.set_title(
        f"{len(evaluation.paths)} images: MAP@R {report.map_at_r:.3f}, R@1 {report.r_at_1:.3f}, "
        f"P@10 {report.precision_at_10:.3f}, mAP@100 {report.map_at_100:.3f}",
        fontsize=9,
    )
    curve.grid(alpha=0.3)
    relevance = evaluation.relevance
    for row, (query, score) in enumerate(worst_list, start=1):
        label = evaluation.labels[query]
        _thumbnail(
            figure.add_subplot(grid[row, 0]),
            evaluation.paths[query],
            "black",
            f"query: {label}\nMAP@R {score:.2f}",
        )
        for j in range(min(hits, evaluation.ranked.shape[1])):
            hit = int(evaluation.ranked[query, j])
            colour = RELEVANT if relevance[query, j] else WRONG
            _thumbnail(
                figure.add_subplot(grid[row, 1 + j]),
                evaluation.paths[hit],
                colour,
                f"{j + 1}. {evaluation.labels[hit]}",
            )
    figure.tight_layout()
    figure.savefig(out, format="png")


def _thumbnail(axes: Axes, path: str, colour: str, title: str) -> None:
    try:
        image = decode_image(path, max_side=THUMB).image
    except ImageError:
        image = Image.new("RGB", (THUMB, THUMB), "grey")
    axes.imshow(np.asarray(image))
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)
    axes.set_title(_short(title), fontsize=7, color=colour)


def _short(text: str, width: int = 22) -> str:
    return "\n".join(
        line if len(line) <= width else line[: width - 1] + "…" for line in text.split("\n")
    )
