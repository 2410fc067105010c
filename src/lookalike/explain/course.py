"""The course's worked examples, computed by the project's own layers (``Conv``, ``MaxPool``,
``FullyConnected`` of :mod:`lookalike.embed.layers`, the parts seed_cnn is built from).

1. A 5x5 binary image convolved with the 3x3 X-shaped filter, no padding: a 3x3 map, 4 first.
2. A 6x6 grey image, zero-padded, convolved with the same filter: the size is kept, 139 first.
3. A 4x4 image max-pooled 2x2 with stride 2: [[6, 8], [3, 4]].
4. Several filters over one image stack into depth, which pooling keeps while halving the size.
5. One training step of a fully connected output layer with the mean-square loss: the forward
   values, the loss and its gradient written out by hand, checked against autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lookalike.embed.layers import Conv, FullyConnected, MaxPool
from lookalike.embed.models import SEED_CNN_SIZE
from lookalike.embed.networks.seed_cnn import WIDTHS

X_FILTER = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
BINARY_IMAGE = [
    [1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 1, 1, 0, 0],
]
GREY_IMAGE = [
    [18, 54, 51, 239, 244, 188],
    [55, 121, 75, 78, 95, 88],
    [35, 24, 204, 113, 109, 221],
    [3, 154, 104, 235, 25, 130],
    [15, 253, 225, 159, 78, 233],
    [68, 85, 180, 214, 245, 0],
]
POOL_IMAGE = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
# Three filters for the depth example: the X, a vertical edge and a horizontal edge.
DEPTH_FILTERS = [
    X_FILTER,
    [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
]
# The training step: 3 inputs, 2 outputs, learning rate 0.5.
FC_WEIGHTS = [[0.2, -0.1, 0.4], [0.5, 0.3, -0.2]]
FC_BIAS = [0.1, -0.1]
FC_INPUT = [1.0, 0.5, -1.0]
FC_TARGET = [0.0, 1.0]
LEARNING_RATE = 0.5
AUTOGRAD_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Grid:
    """A named 2-D array of numbers, as the course draws it."""

    title: str
    values: np.ndarray


@dataclass(frozen=True)
class Example:
    """One worked example: its grids (inputs, weights, outputs) and what it shows, in words."""

    name: str  # a file stem: "convolution", ...
    title: str
    grids: list[Grid]
    lines: list[str] = field(default_factory=list)


def course_examples() -> list[Example]:
    """The five worked examples, computed by the real layers."""
    return [convolution(), padded_convolution(), max_pooling(), depth(), training_step()]


def convolution() -> Example:
    out = _conv([X_FILTER], padding=0)(_image(BINARY_IMAGE))[0, 0]
    return Example(
        "convolution",
        "3x3 convolution of a 5x5 binary image (no padding)",
        [
            Grid("image 5x5", _np(BINARY_IMAGE)),
            Grid("filter 3x3", _np(X_FILTER)),
            Grid("output 3x3", _np(out)),
        ],
        [
            f"the filter fits 3 x 3 times: output {tuple(out.shape)}",
            f"top-left: {_products(X_FILTER, _np(BINARY_IMAGE)[:3, :3])} = {_n(out[0, 0])}",
        ],
    )


def padded_convolution() -> Example:
    image = _image(GREY_IMAGE)
    out = _conv([X_FILTER], padding=1)(image)[0, 0]
    padded = F.pad(image, (1, 1, 1, 1))[0, 0]
    return Example(
        "padding",
        "zero padding keeps the size: 6x6 grey image, 3x3 X filter",
        [
            Grid("padded image 8x8", _np(padded)),
            Grid("filter 3x3", _np(X_FILTER)),
            Grid("output 6x6", _np(out)),
        ],
        [
            f"one ring of zeros: {tuple(image.shape[-2:])} -> {tuple(padded.shape)}, "
            f"output {tuple(out.shape)} (size kept)",
            f"top-left: {_products(X_FILTER, _np(padded)[:3, :3])} = {_n(out[0, 0])}",
        ],
    )


def max_pooling() -> Example:
    out = MaxPool()(_image(POOL_IMAGE))[0, 0]
    return Example(
        "pooling",
        "2x2 max pooling with stride 2",
        [Grid("image 4x4", _np(POOL_IMAGE)), Grid("pooled 2x2", _np(out))],
        [
            f"each 2x2 block keeps its largest value: {_np(out).astype(int).tolist()}",
            f"size halved: {tuple(_np(POOL_IMAGE).shape)} -> {tuple(out.shape)}",
        ],
    )


def depth() -> Example:
    image = _image(GREY_IMAGE)
    maps = _conv(DEPTH_FILTERS, padding=1)(image)[0]
    pooled = MaxPool()(maps[None])[0]
    names = ("X", "vertical edge", "horizontal edge")
    side = SEED_CNN_SIZE
    last = side // 2 ** len(WIDTHS)  # each stage's 2x2 pooling halves the size
    return Example(
        "depth",
        "several filters stack into depth",
        [Grid(f"filter {n}", _np(f)) for n, f in zip(names, DEPTH_FILTERS, strict=True)]
        + [Grid(f"map {i + 1}", _np(m)) for i, m in enumerate(maps)],
        [
            f"{len(DEPTH_FILTERS)} filters over a 1 x 6 x 6 image: "
            f"output {' x '.join(map(str, maps.shape))} (one map per filter: the depth)",
            f"2x2 max pooling keeps the depth and halves the size: "
            f"{' x '.join(map(str, pooled.shape))}",
            f"map 1 is the padding example's output (top-left {_n(maps[0, 0, 0])}); "
            f"map 2 top-left {_n(maps[1, 0, 0])}, map 3 top-left {_n(maps[2, 0, 0])}",
            f"seed_cnn stacks {', '.join(map(str, WIDTHS))} filters: 3 x {side} x {side} -> "
            f"{WIDTHS[-1]} x {last} x {last} (lookalike layers IMAGE --model seed_cnn)",
        ],
    )


def training_step() -> Example:
    layer = FullyConnected(len(FC_INPUT), len(FC_TARGET))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(FC_WEIGHTS))
        layer.bias.copy_(torch.tensor(FC_BIAS))
    x = torch.tensor(FC_INPUT, dtype=torch.float64)
    y = torch.tensor(FC_TARGET, dtype=torch.float64)
    layer = layer.double()
    predicted = layer(x)
    loss = F.mse_loss(predicted, y)  # (1/n) sum (y_hat - y)^2, as lookalike train's mse loss
    loss.backward()  # type: ignore[no-untyped-call]
    weight = layer.weight.detach()
    n = len(FC_TARGET)
    # The chain rule, by hand: dL/dy_hat = 2/n (y_hat - y), then through y_hat = W x + b.
    d_predicted = 2.0 / n * (predicted.detach() - y)
    d_weight = torch.outer(d_predicted, x)
    d_bias = d_predicted
    d_input = weight.T @ d_predicted
    assert layer.weight.grad is not None and layer.bias.grad is not None
    error = max(
        float((d_weight - layer.weight.grad).abs().max()),
        float((d_bias - layer.bias.grad).abs().max()),
    )
    with torch.no_grad():
        stepped = FullyConnected(len(FC_INPUT), len(FC_TARGET)).double()
        stepped.weight.copy_(weight - LEARNING_RATE * d_weight)
        stepped.bias.copy_(layer.bias - LEARNING_RATE * d_bias)
        new_loss = F.mse_loss(stepped(x), y)
    checked = "agrees" if error <= AUTOGRAD_TOLERANCE else "DISAGREES"
    return Example(
        "training",
        "one training step of a fully connected layer with the mean-square loss",
        [
            Grid("W", _np(weight)),
            Grid("x", _np(x)[:, None]),
            Grid("b", _np(FC_BIAS)[:, None]),
            Grid("y_hat = W x + b", _np(predicted)[:, None]),
            Grid("y", _np(y)[:, None]),
            Grid("dL/dW", _np(d_weight)),
        ],
        [
            f"forward: y_hat = W x + b = {_v(predicted)}, target y = {_v(y)}",
            f"loss: L = 1/n sum (y_hat - y)^2 = {_n(loss)} (n = {n})",
            f"dL/dy_hat = 2/n (y_hat - y) = {_v(d_predicted)}",
            f"dL/dW = 2/n (y_hat - y) x^T = {_m(d_weight)}",
            f"dL/db = 2/n (y_hat - y) = {_v(d_bias)}",
            f"dL/dx = W^T 2/n (y_hat - y) = {_v(d_input)}",
            f"autograd {checked}: largest difference {error:.1e} "
            f"(tolerance {AUTOGRAD_TOLERANCE:g})",
            f"step W -= {LEARNING_RATE:g} dL/dW, b -= {LEARNING_RATE:g} dL/db: "
            f"loss {_n(loss)} -> {_n(new_loss)}",
        ],
    )


def format_course(examples: list[Example]) -> str:
    """The examples as text: each title, its grids (numbers aligned) and its lines."""
    blocks = []
    for number, example in enumerate(examples, 1):
        lines = [f"{number}. {example.title}"]
        for grid in example.grids:
            lines.append(f"   {grid.title}:")
            lines += ["     " + row for row in format_grid(grid.values)]
        lines += [f"   {line}" for line in example.lines]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_grid(values: np.ndarray) -> list[str]:
    """Rows of a 2-D array, right-aligned; whole numbers without a decimal point."""
    texts = [[_n(v) for v in row] for row in np.atleast_2d(values)]
    width = max(len(t) for row in texts for t in row)
    return [" ".join(t.rjust(width) for t in row) for row in texts]


def _conv(filters: list[list[list[int]]], padding: int) -> Conv:
    """A Conv of one input channel whose 3x3 weights are ``filters`` (one per output)."""
    conv = Conv(1, len(filters), padding=padding)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(filters, dtype=torch.float32)[:, None])
    return conv


def _products(weights: list[list[int]], window: np.ndarray) -> str:
    """The sum a convolution computes at one place, written out: "1*1 + 0*1 + ..."."""
    return " + ".join(
        f"{_n(w)}*{_n(p)}" for w, p in zip(np.ravel(weights), window.ravel(), strict=True)
    )


def _image(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def _np(values: object) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().numpy().astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def _n(value: object) -> str:
    """A number as the course writes it: 4, 139, 0.0425 (at most 6 significant digits)."""
    number = float(value.item() if isinstance(value, torch.Tensor) else value)  # type: ignore[arg-type]
    return f"{number:.6g}" if number != round(number) else str(round(number))


def _v(values: torch.Tensor) -> str:
    return "[" + ", ".join(_n(v) for v in values.tolist()) + "]"


def _m(values: torch.Tensor) -> str:
    return "[" + ", ".join(_v(row) for row in values) + "]"
