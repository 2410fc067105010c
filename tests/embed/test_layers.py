"""The course's worked examples, computed by the real layers the seed CNN is built from."""

from __future__ import annotations

import torch

from lookalike.embed.layers import Conv, ConvBlock, FullyConnected, MaxPool

FILTER = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def conv_with_filter(padding: int) -> Conv:
    """A one-channel Conv whose 3x3 weights are the course's filter."""
    conv = Conv(1, 1, padding=padding)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(FILTER, dtype=torch.float32).view(1, 1, 3, 3))
    return conv


def as_batch(rows: list[list[int]]) -> torch.Tensor:
    """An image as a (1, 1, H, W) float tensor."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_convolution_of_the_binary_image_gives_4_at_the_top_left() -> None:
    image = [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ]
    out = conv_with_filter(padding=0)(as_batch(image))[0, 0]
    assert out.shape == (3, 3)  # no padding: the filter fits 3 x 3 times
    assert out[0, 0].item() == 4
    # the whole feature map of the classic example
    assert out.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]


def test_zero_padded_convolution_keeps_6x6_and_gives_139_at_the_top_left() -> None:
    image = [
        [18, 54, 51, 239, 244, 188],
        [55, 121, 75, 78, 95, 88],
        [35, 24, 204, 113, 109, 221],
        [3, 154, 104, 235, 25, 130],
        [15, 253, 225, 159, 78, 233],
        [68, 85, 180, 214, 245, 0],
    ]
    padded = torch.nn.functional.pad(as_batch(image), (1, 1, 1, 1))
    assert padded.shape[-2:] == (8, 8)
    assert padded[0, 0, 0].eq(0).all() and padded[0, 0, :, 0].eq(0).all()
    out = conv_with_filter(padding=1)(as_batch(image))[0, 0]
    assert out.shape == (6, 6)
    assert out[0, 0].item() == 139  # 0+0+0 + 0+18+0 + 0+0+121 = 139
    # the layer's own padding is the same as padding by hand, then a valid convolution
    assert torch.equal(out, conv_with_filter(padding=0)(padded)[0, 0])


def test_max_pooling_2x2_stride_2() -> None:
    image = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
    out = MaxPool()(as_batch(image))[0, 0]
    assert out.tolist() == [[6, 8], [3, 4]]


def test_conv_keeps_the_size_and_pooling_halves_it() -> None:
    x = torch.randn(2, 3, 20, 14)
    features = Conv(3, 8)(x)
    assert features.shape == (2, 8, 20, 14)
    assert MaxPool()(features).shape == (2, 8, 10, 7)
    assert ConvBlock(3, 8).eval()(x).shape == (2, 8, 20, 14)
    assert ConvBlock(3, 8).eval()(x).min() >= 0  # ReLU


def test_fully_connected_is_a_weighted_sum_plus_bias() -> None:
    layer = FullyConnected(3, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        layer.bias.fill_(0.5)
    assert layer(torch.tensor([[1.0, 1.0, 2.0]])).item() == 1 + 2 + 6 + 0.5
