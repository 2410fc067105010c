"""Global pooling of a convolutional feature map into one descriptor per image.

Retrieval works better on pooled convolutional activations than on classifier outputs:
SPoC (average), MAC (max) and GeM (generalised mean, between the two) are the usual choices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

GEM_P = 3.0


def spoc(features: torch.Tensor) -> torch.Tensor:
    """Sum/average pooling: (n, c, h, w) -> (n, c)."""
    return features.mean(dim=(2, 3))


def mac(features: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: (n, c, h, w) -> (n, c)."""
    return features.amax(dim=(2, 3))


def gem(features: torch.Tensor, p: float | torch.Tensor = GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean: (mean of x**p) ** (1/p); p=1 is SPoC, p -> inf tends to MAC."""
    return features.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


POOLINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gap": spoc,  # global average pooling, the classifier's own
    "spoc": spoc,
    "mac": mac,
    "gem": gem,
}
