"""The registry names, describes and builds models; knowing them costs no PyTorch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from torch import nn

from lookalike.embed.registry import create_backbone, list_models, model_entry
from lookalike.errors import ModelNotFoundError


def test_models_are_known_without_pytorch() -> None:
    code = (
        "import sys\n"
        "from lookalike.embed.registry import list_models, model_entry\n"
        "assert 'mobilenet_v2' in list_models() and model_entry('seed_cnn').preprocess.size\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'"
        " or m.startswith(('lookalike.demo', 'lookalike.evaluate'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_create_backbone_loads_the_weights() -> None:
    assert list_models() == [
        "efficientnet_lite0",
        "efficientnet_lite0_gem",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "mobilenet_v2",
        "seed_cnn",
    ]
    backbone = create_backbone("mobilenet_v2")
    assert isinstance(backbone, nn.Module) and not backbone.training
    assert model_entry("mobilenet_v2").int8 and not model_entry("efficientnet_lite1").int8
    with pytest.raises(ModelNotFoundError, match="unknown model 'resnet'; choose from eff"):
        create_backbone("resnet")
