"""What a trained model directory says about itself (``model.json``), read without PyTorch.

:mod:`lookalike.embed.model_dir` writes and loads the network; this is the part that commands
which never embed (an unchanged ``lookalike index`` run, ``info``) may read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lookalike.embed.preprocess import Preprocess
from lookalike.errors import ModelNotFoundError

FORMAT = 1
WEIGHTS = "weights.pt"
MODEL_JSON = "model.json"
MODEL_CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` says."""

    architecture: str  # a registered model name, e.g. "mobilenet_v2"
    preprocess: Preprocess
    gem_p: float
    dim: int
    model_id: str
    weights_sha256: str
    whitened: bool = False  # a learned whitening layer ends the network


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / MODEL_JSON).is_file()


def read_model_info(directory: Path) -> ModelInfo:
    try:
        meta = json.loads((directory / MODEL_JSON).read_text())
        pre = meta["preprocess"]
        return ModelInfo(
            architecture=str(meta["architecture"]),
            preprocess=Preprocess(
                int(pre["size"]),
                tuple(pre["mean"]),
                tuple(pre["std"]),
                pre.get("mode", "letterbox"),
            ),
            gem_p=float(meta["pooling"]["p"]),
            dim=int(meta["dim"]),
            model_id=str(meta["model_id"]),
            weights_sha256=str(meta["weights_sha256"]),
            whitened=bool(meta.get("whitened", False)),  # absent before format 1 had it
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(f"{directory} is not a lookalike model directory: {exc}") from exc
