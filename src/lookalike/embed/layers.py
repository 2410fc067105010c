"""The course's building blocks of a CNN, one small named module each.

A learner meets these parts in this order: a convolution slides a 3x3 filter over the image
(zero padding keeps the size), max pooling keeps the strongest response in each 2x2 window
(halving the size), batch normalisation keeps activations in a stable range while training,
and a fully connected layer turns the pooled features into the final vector. The networks in
:mod:`lookalike.embed.networks` are assembled from them.
"""

from __future__ import annotations

from torch import nn


class Conv(nn.Conv2d):
    """A 3x3 convolution that keeps the spatial size ("same" zero padding).

    Each output value is the sum, over a 3x3 window of every input channel, of pixel times
    filter weight (plus a bias). Without padding a 3x3 filter fits only ``H-2`` by ``W-2``
    times; one ring of zeros around the image (``padding=1``) lets it fit ``H`` by ``W`` times,
    so (n, inputs, H, W) -> (n, outputs, H, W). ``padding=0`` gives the unpadded ("valid")
    convolution, (n, inputs, H, W) -> (n, outputs, H-2, W-2).

    The bias is off by default because a :class:`ConvBlock` follows the convolution with batch
    normalisation, whose own shift makes a bias redundant.
    """

    def __init__(self, inputs: int, outputs: int, padding: int = 1, bias: bool = False) -> None:
        super().__init__(inputs, outputs, kernel_size=3, stride=1, padding=padding, bias=bias)


class MaxPool(nn.MaxPool2d):
    """2x2 max pooling with stride 2: the largest value of each 2x2 block, non-overlapping.

    (n, c, H, W) -> (n, c, H//2, W//2). It halves the size (so later filters see a larger part
    of the image) and makes the features tolerate small shifts.
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)


class FullyConnected(nn.Linear):
    """A fully connected layer: every output is a weighted sum of every input, plus a bias.

    (n, inputs) -> (n, outputs); here it maps pooled convolutional features to the embedding.
    """

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(inputs, outputs, bias=True)


class ConvBlock(nn.Sequential):
    """Conv -> BatchNorm -> ReLU: (n, inputs, H, W) -> (n, outputs, H, W).

    Batch normalisation standardises each channel over the batch (then learns a scale and a
    shift), which lets a network train quickly from random weights; ReLU keeps positives only.
    """

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(Conv(inputs, outputs), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))
