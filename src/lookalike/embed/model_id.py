"""Model ids: the name of a vector space. Two vectors are comparable only when their ids match,
so an id says everything that changes the vectors: network and weights, pooling,
preprocessing, scales, and for int8 the calibration that set the quantisation ranges."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lookalike.embed.preprocess import Preprocess

# An int8 id: the float id, "-int8", the calibration's tag (ids made before tags end in -int8).
_INT8 = re.compile(r"-int8(-[0-9a-f]+)?$")


def float_model_id(
    space: str, pooling: str, preprocess: Preprocess, scales: Sequence[float] = (1.0,)
) -> str:
    """``space`` (a model name, or name@weights digest), pooling, preprocessing, scales:
    e.g. "mobilenet_v2-gap-letterbox224"."""
    model_id = f"{space}-{pooling}-{preprocess.id}"
    if tuple(scales) != (1.0,):
        model_id += "-ms" + "_".join(f"{s:.3g}" for s in scales)
    return model_id


def int8_model_id(float_id: str, calibration_tag: str) -> str:
    """The quantised network's id: e.g. "mobilenet_v2-gap-letterbox224-int8-<tag>"."""
    return f"{float_id}-int8-{calibration_tag}"


def is_int8(model_id: str) -> bool:
    return _INT8.search(model_id) is not None
