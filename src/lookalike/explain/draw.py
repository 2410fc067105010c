"""Pictures of what explain computes: a match's heatmaps, a network's layers, the course.

Bare matplotlib Figures on the Agg canvas (as :mod:`lookalike.evaluate.plot`): no pyplot, so
no global backend or GUI is involved.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch, Rectangle

from lookalike.decode.image import decode_image
from lookalike.explain.course import Example
from lookalike.explain.layers import LayerViews, layer_views
from lookalike.explain.similarity import Explanation, Side, explain_match
from lookalike.index import Index

HEAT = "inferno"
MAPS = "viridis"
PAIR_LINES = 6


def draw_explanation(explanation: Explanation, out: Path | str, lines: int = PAIR_LINES) -> None:
    """A PNG: the query and the result side by side, each under its heatmap, with lines
    joining the ``lines`` cell pairs that add most to the score."""
    figure = _figure(11, 5.6)
    axes = [figure.add_subplot(1, 2, i + 1) for i in range(2)]
    sides = (explanation.query, explanation.result)
    for ax, side, role in zip(axes, sides, ("query", "result"), strict=True):
        _heat_over_image(ax, side)
        ax.set_title(_short(f"{role}: {side.label}", 60), fontsize=9)
    for rank, pair in enumerate(explanation.top_pairs(lines)):
        start = _centre(explanation.query, pair.query)
        end = _centre(explanation.result, pair.result)
        figure.add_artist(
            ConnectionPatch(
                start,
                end,
                "data",
                "data",
                axesA=axes[0],
                axesB=axes[1],
                color="#4dd0e1",
                linewidth=2.2 - 0.25 * rank,
                alpha=0.85,
            )
        )
    heading = f"score {explanation.score:.4f}"
    if abs(explanation.score - explanation.total) > 1e-4:
        heading += f" (maps sum to {explanation.total:.4f})"
    figure.suptitle(heading + f" · {explanation.model_id}", fontsize=11)
    if explanation.notes:
        figure.text(0.5, 0.02, "\n".join(explanation.notes), ha="center", fontsize=8)
    figure.tight_layout(rect=(0, 0.06 if explanation.notes else 0, 1, 0.95))
    figure.savefig(out, format="png")


def draw_layers(views: LayerViews, out: Path | str) -> None:
    """A PNG: the network input and the first filters, then each stage's strongest maps,
    left to right, each column labelled with its shape (channels x height x width)."""
    rows = max(len(s.channels) for s in views.stages)
    columns = 1 + len(views.stages)
    figure = _figure(1.7 * columns, 1.7 * rows + 0.8)
    grid = figure.add_gridspec(rows, columns)
    size = views.input.shape[0]
    ax = figure.add_subplot(grid[0, 0])
    _bare(ax, views.input, f"input\n3 x {size} x {size}")
    ax = figure.add_subplot(grid[1:, 0] if rows > 1 else grid[0, 0])
    n, _, k, _ = views.filters.shape
    _bare(ax, filter_tiles(views.filters), f"{n} filters {k}x{k}\nstride {views.filter_stride}")
    for col, stage in enumerate(views.stages, start=1):
        c, h, w = stage.shape
        for row, (channel, values) in enumerate(zip(stage.channels, stage.maps, strict=True)):
            ax = figure.add_subplot(grid[row, col])
            title = f"{stage.name} {stage.kind}\n{c} x {h} x {w}\n" if row == 0 else ""
            ax.imshow(values, cmap=MAPS, interpolation="nearest")
            _plain(ax, f"{title}channel {channel}")
    figure.suptitle(f"what {views.model_id} sees", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, format="png")


def draw_course(examples: list[Example], folder: Path | str) -> list[Path]:
    """One PNG per worked example in ``folder`` (created), each grid with its numbers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, example in enumerate(examples, 1):
        columns = len(example.grids)
        widths = [max(1.0, g.values.shape[1] * 0.55) for g in example.grids]
        figure = _figure(sum(widths) + 0.4 * columns, 4.2)
        grid = figure.add_gridspec(1, columns, width_ratios=widths)
        for col, item in enumerate(example.grids):
            ax = figure.add_subplot(grid[0, col])
            values = np.atleast_2d(item.values)
            ax.imshow(values, cmap="coolwarm" if values.min() < 0 else "Greys", alpha=0.55)
            for (r, c), value in np.ndenumerate(values):
                ax.text(c, r, f"{value:.4g}", ha="center", va="center", fontsize=7)
            _plain(ax, item.title)
        figure.suptitle(f"{number}. {example.title}", fontsize=10)
        figure.text(0.5, 0.02, "\n".join(example.lines), ha="center", fontsize=7)
        figure.tight_layout(rect=(0, 0.04 * len(example.lines), 1, 0.93))
        path = folder / f"{number}-{example.name}.png"
        figure.savefig(path, format="png")
        written.append(path)
    return written


def draw_demo(index: Index, query: Path, original: Path, folder: Path) -> tuple[Path, Path]:
    """The demo's two pictures in ``folder``: why ``query`` (an edited copy) matched its
    indexed ``original``, and what the index's network sees in the original."""
    folder.mkdir(parents=True, exist_ok=True)
    explained, layers = folder / "explain.png", folder / "layers.png"
    draw_explanation(explain_match(index, query, original), explained)
    image = decode_image(original, max_side=index.embedder.image_size).image
    draw_layers(layer_views(index.embedder, image), layers)
    return explained, layers


def filter_tiles(filters: np.ndarray) -> np.ndarray:
    """float32 (n, 3, k, k) RGB filters -> one float (rows, cols, 3) mosaic in [0, 1]: each
    filter scaled on its own around mid-grey (0.5 = weight 0), a 1-pixel gap between."""
    n, _, k, _ = filters.shape
    per_row = math.ceil(math.sqrt(n))
    rows = math.ceil(n / per_row)
    mosaic = np.ones(((k + 1) * rows - 1, (k + 1) * per_row - 1, 3), dtype=np.float32)
    for i, f in enumerate(filters):
        tile = 0.5 + f.transpose(1, 2, 0) / (2 * max(float(np.abs(f).max()), 1e-12))
        r, c = divmod(i, per_row)
        mosaic[r * (k + 1) : r * (k + 1) + k, c * (k + 1) : c * (k + 1) + k] = tile
    return mosaic


def _heat_over_image(ax: Axes, side: Side) -> None:
    """The image in its original pixels, the heat over the cells, a region framed."""
    ax.imshow(np.asarray(side.image), extent=(0, side.width, side.height, 0))
    cells = side.cells
    extent = (cells[0, 0, 0], cells[-1, -1, 2], cells[-1, -1, 3], cells[0, 0, 1])
    heat = np.clip(side.heat, 0, None)
    ax.imshow(
        heat,
        extent=extent,
        cmap=HEAT,
        alpha=0.55,
        interpolation="bilinear",
        vmin=0,
        vmax=max(float(heat.max()), 1e-12),
    )
    if side.region is not None:
        box = side.region
        ax.add_patch(Rectangle((box.x, box.y), box.w, box.h, fill=False, color="white", lw=2))
    ax.set_xlim(0, side.width)
    ax.set_ylim(side.height, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _centre(side: Side, cell: tuple[int, int]) -> tuple[float, float]:
    left, top, right, bottom = side.cells[cell]
    return float(left + right) / 2, float(top + bottom) / 2


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _bare(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation="nearest")
    _plain(ax, title)


def _plain(ax: Axes, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
