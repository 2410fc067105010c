from __future__ import annotations

import numpy as np
import pytest
import torch

from lookalike.embed.pooling import POOLINGS, gem, mac, spoc
from lookalike.normalise import l2_normalise

# One image, two channels, a 2x2 map: channel 0 = [[1, 2], [3, 4]], channel 1 = all 2.
FEATURES = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]]])


def test_spoc_mac_gem_by_hand() -> None:
    assert spoc(FEATURES).tolist() == [[2.5, 2.0]]
    assert mac(FEATURES).tolist() == [[4.0, 2.0]]
    # GeM p=3: ((1 + 8 + 27 + 64) / 4) ** (1/3) = 25 ** (1/3); a constant channel stays 2.
    assert gem(FEATURES).numpy() == pytest.approx(np.array([[25 ** (1 / 3), 2.0]]), rel=1e-5)


def test_gem_spans_average_to_max() -> None:
    assert torch.allclose(gem(FEATURES, p=1.0), spoc(FEATURES), atol=1e-5)
    # p=60: 4 * (1/4) ** (1/60) = 3.91 (a larger p overflows float32).
    assert torch.allclose(gem(FEATURES, p=60.0), mac(FEATURES), rtol=0.03)
    # Between the two for p = 3.
    assert spoc(FEATURES)[0, 0] < gem(FEATURES)[0, 0] < mac(FEATURES)[0, 0]


def test_poolings_shape_and_names() -> None:
    features = torch.rand(3, 8, 7, 5)
    for name, pool in POOLINGS.items():
        assert pool(features).shape == (3, 8), name
    assert set(POOLINGS) == {"gap", "spoc", "mac", "gem"}


def test_l2_normalise() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert out == pytest.approx(np.array([[0.6, 0.8], [0.0, 0.0]]))
