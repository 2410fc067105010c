"""--freeze N cuts any backbone's block list: the frozen prefix and the trainable rest
chain into the whole network, and only the rest learns."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.embed.registry import create_torch_embedder
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.errors import LookalikeError
from lookalike.train.loop import _Stages


@pytest.mark.parametrize(("name", "frozen"), [("efficientnet_lite0", 12), ("mobilenet_v2", 17)])
def test_frozen_prefix_then_trainable_rest_is_the_backbone(name: str, frozen: int) -> None:
    embedder = create_torch_embedder(name)
    net = RetrievalNet(embedder.backbone)
    stages = _Stages(net, frozen)
    batch = torch.from_numpy(embedder.preprocess.batch([Image.fromarray(data.chelsea())]))
    with torch.inference_mode():
        assert torch.equal(
            stages.suffix(stages.prefix(batch)), net.backbone.forward_features(batch)
        )
    assert stages.frozen is not None
    fixed = {id(p) for p in stages.frozen.parameters()}
    trainable = [p for p in net.backbone.parameters() if p.requires_grad]  # type: ignore[attr-defined]
    assert fixed and trainable and not fixed & {id(p) for p in trainable}
    assert all(not p.requires_grad for p in stages.frozen.parameters())
    blocks = len(net.backbone.blocks())
    with pytest.raises(LookalikeError, match=f"it has {blocks} feature blocks"):
        _Stages(RetrievalNet(create_torch_embedder(name).backbone), blocks)
