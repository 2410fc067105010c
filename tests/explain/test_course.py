"""The course's worked examples, computed by the real layers, and printed as the course has them."""

from __future__ import annotations

import numpy as np

from lookalike.explain.course import course_examples, format_course


def test_every_worked_number() -> None:
    convolution, padding, pooling, depth, training = course_examples()
    assert convolution.grids[-1].values.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    out = padding.grids[-1].values
    assert out.shape == (6, 6) and out[0, 0] == 139
    assert padding.grids[0].values.shape == (8, 8) and not padding.grids[0].values[0].any()
    assert pooling.grids[-1].values.tolist() == [[6, 8], [3, 4]]
    maps = [g.values for g in depth.grids if g.title.startswith("map")]
    assert len(maps) == 3 and np.array_equal(maps[0], out)  # the X filter's map is example 2's
    assert maps[1][0, 0] == 175 and maps[2][0, 0] == 176
    grids = {g.title: g.values for g in training.grids}
    np.testing.assert_allclose(grids["y_hat = W x + b"].ravel(), [-0.15, 0.75], atol=1e-12)
    np.testing.assert_allclose(
        grids["dL/dW"], [[-0.15, -0.075, 0.15], [-0.25, -0.125, 0.25]], atol=1e-12
    )


def test_the_printed_course() -> None:
    text = format_course(course_examples())
    for line in [
        "1. 3x3 convolution of a 5x5 binary image (no padding)",
        "     4 3 4",
        "top-left: 1*1 + 0*1 + 1*1 + 0*0 + 1*1 + 0*1 + 1*0 + 0*0 + 1*1 = 4",
        "     139 184 250 409 410 283",
        "top-left: 1*0 + 0*0 + 1*0 + 0*0 + 1*18 + 0*54 + 1*0 + 0*55 + 1*121 = 139",
        "one ring of zeros: (6, 6) -> (8, 8), output (6, 6) (size kept)",
        "each 2x2 block keeps its largest value: [[6, 8], [3, 4]]",
        "3 filters over a 1 x 6 x 6 image: output 3 x 6 x 6",
        "halves the size: 3 x 3 x 3",
        "seed_cnn stacks 32, 64, 128, 256 filters: 3 x 128 x 128 -> 256 x 8 x 8",
        "forward: y_hat = W x + b = [-0.15, 0.75], target y = [0, 1]",
        "loss: L = 1/n sum (y_hat - y)^2 = 0.0425 (n = 2)",
        "dL/dy_hat = 2/n (y_hat - y) = [-0.15, -0.25]",
        "dL/dW = 2/n (y_hat - y) x^T = [[-0.15, -0.075, 0.15], [-0.25, -0.125, 0.25]]",
        "dL/db = 2/n (y_hat - y) = [-0.15, -0.25]",
        "dL/dx = W^T 2/n (y_hat - y) = [-0.155, -0.06, -0.01]",
        "autograd agrees: largest difference",
        "loss 0.0425 -> 0.0166016",
    ]:
        assert line in text, line
