"""The PyTorch embedder: a backbone's feature map, pooled and normalised; and its feature maps
for a look inside (``feature_maps``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.embed.classes import ClassHead, TopClasses
from lookalike.embed.local_features import STAGE, LocalFeatures, local_features
from lookalike.embed.model_id import float_model_id
from lookalike.embed.pooling import POOLINGS
from lookalike.embed.preprocess import Geometry, Preprocess
from lookalike.embed.stages import StageInfo, select_stages
from lookalike.normalise import l2_normalise

Stages = int | Sequence[int] | None  # which stages: see lookalike.embed.stages.select_stages


class Backbone(Protocol):
    """A network cut before its classifier (as in timm's ``forward_features``), seen as an
    ordered list of blocks (``blocks()``, each feeding the next) of which some end a stage.

    A backbone may also have ``forward_head(pooled) -> embedding``, a learned head applied
    after pooling: (n, num_features) -> (n, d); the embedder then uses it and its ``dim`` is d.
    """

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) normalised images -> (n, num_features, h, w) feature map."""
        ...

    def forward_intermediates(
        self, x: torch.Tensor, indices: Stages = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One forward pass -> (the final feature map, as ``forward_features``; the chosen
        stages' maps, in stage order, each (n, channels, H/stride, W/stride))."""
        ...

    def stage_info(self) -> list[StageInfo]:
        """Every stage's name, channels and stride, in order, without running the network."""
        ...

    def blocks(self) -> list[nn.Module]:
        """The blocks in order: running them one after the other is ``forward_features``."""
        ...

    def eval(self) -> Backbone: ...


class StagedBackbone(nn.Module):
    """``forward_intermediates`` and ``stage_info`` for a backbone made of ``blocks()``.

    A subclass sets ``block_info`` (one :class:`StageInfo` per block) and ``stage_ends`` (the
    blocks whose outputs are its stages; the last block's is the final map).
    """

    num_features: int
    block_info: tuple[StageInfo, ...]
    stage_ends: tuple[int, ...]

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def stage_info(self) -> list[StageInfo]:
        return [self.block_info[i] for i in self.stage_ends]

    def forward_intermediates(
        self, x: torch.Tensor, indices: Stages = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        keep = {self.stage_ends[i] for i in select_stages(indices, len(self.stage_ends))}
        maps = []
        for i, block in enumerate(self.blocks()):
            x = block(x)
            if i in keep:
                maps.append(x)
        return x, maps


@dataclass(frozen=True)
class FeatureMaps:
    """What the network sees in n images, from one float32 PyTorch forward pass.

    ``final``: float32 (n, c, h, w), the map that pooling turns into the vector.
    ``stages[i]``: float32 (n, c_i, h_i, w_i), the map of stage ``stage_info[i]``.
    ``geometry[j]``: where image j lies in the network input, to map a cell of any map back
    to the image's pixels (:meth:`Geometry.cell_box`).
    """

    final: np.ndarray
    stages: list[np.ndarray]
    stage_info: list[StageInfo]
    geometry: list[Geometry]


@torch.inference_mode()
def feature_maps(
    backbone: Backbone,
    preprocess: Preprocess,
    images: Sequence[Image.Image],
    indices: Stages = None,
) -> FeatureMaps:
    """The backbone's final map and chosen stages' maps of RGB images (:class:`FeatureMaps`)."""
    final, stages = backbone.forward_intermediates(
        torch.from_numpy(preprocess.batch(images)), indices
    )
    info = backbone.stage_info()
    return FeatureMaps(
        _array(final),
        [_array(s) for s in stages],
        [info[i] for i in select_stages(indices, len(info))],
        [preprocess.geometry(*image.size) for image in images],
    )


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.float().numpy(), dtype=np.float32)


class TorchEmbedder:
    """Backbone feature map -> pooling -> L2 normalisation, run by PyTorch on the CPU.

    With several ``scales`` the image is embedded at each (the preprocessing size times the
    scale), and the L2-normalised descriptors are averaged, then normalised again: objects
    of different sizes then meet the network's receptive fields at some scale.
    """

    def __init__(
        self,
        name: str,
        backbone: Backbone,
        preprocess: Preprocess,
        pooling: str = "gap",
        scales: Sequence[float] = (1.0,),
        head: ClassHead | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {sorted(POOLINGS)}")
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive, got {scales}")
        self.backbone = backbone.eval()
        self.preprocess = preprocess
        self.pooling = pooling
        self.scales = tuple(float(s) for s in scales)
        self.head: Callable[[torch.Tensor], torch.Tensor] | None = getattr(
            backbone, "forward_head", None
        )
        self.dim = self._output_dim()
        self.image_size = round(preprocess.decode_side * max(self.scales))
        self.model_id = float_model_id(name, pooling, preprocess, self.scales)
        # The ImageNet classifier reads the average-pooled final map of one pass: with another
        # pooling that average is computed beside the vector (:meth:`forward_with_stage`).
        single_pass = self.head is None and self.scales == (1.0,)
        self.class_head = head if single_pass else None

    @torch.inference_mode()
    def _output_dim(self) -> int:
        if self.head is None:
            return self.backbone.num_features
        return int(self.head(torch.zeros(1, self.backbone.num_features)).shape[1])

    def batch(self, images: Sequence[Image.Image], scale: float = 1.0) -> np.ndarray:
        """RGB images at ``scale`` times the preprocessing size -> float32 (n, 3, s, s)."""
        size = round(self.preprocess.size * scale)
        preprocess = (
            self.preprocess if size == self.preprocess.size else replace(self.preprocess, size=size)
        )
        return preprocess.batch(images)

    @torch.inference_mode()
    def feature_map(self, images: Sequence[Image.Image], scale: float = 1.0) -> torch.Tensor:
        """RGB images at ``scale`` times the preprocessing size -> (n, num_features, h, w)."""
        return self.backbone.forward_features(torch.from_numpy(self.batch(images, scale)))

    def feature_maps(self, images: Sequence[Image.Image], indices: Stages = None) -> FeatureMaps:
        """The final map and the chosen stages' maps of RGB images, at the preprocessing size."""
        return feature_maps(self.backbone, self.preprocess, images, indices)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised images (n, 3, H, W) -> vectors (n, dim) before L2 normalisation."""
        pooled = POOLINGS[self.pooling](self.backbone.forward_features(batch))
        return pooled if self.head is None else self.head(pooled)

    @property
    def averages_apart(self) -> bool:
        """Whether the classifier's input, the average-pooled map, is not the vector itself."""
        return self.class_head is not None and self.pooling != "gap"

    def forward_with_stage(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward`, the map of stage ``local_features.STAGE`` (n, c, h, w) that local
        features come from, and the average-pooled final map (n, num_features) that the
        ImageNet classifier reads (the vector itself when pooling is the average), from one
        pass: the exported graph's outputs."""
        final, (stage,) = self.backbone.forward_intermediates(batch, [STAGE])
        pooled = POOLINGS[self.pooling](final)
        average = POOLINGS["gap"](final) if self.pooling != "gap" else pooled
        return (pooled if self.head is None else self.head(pooled)), stage, average

    def module(self) -> nn.Module:
        """:meth:`forward_with_stage` as one module that owns the backbone's weights (for
        exporting: the graph's outputs are the vectors, the local features' map and, when
        :attr:`averages_apart`, the classifier's input)."""
        return _Network(self)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return average_scales(
            [self.forward(torch.from_numpy(self.batch(images, s))).numpy() for s in self.scales]
        )

    @property
    def has_classes(self) -> bool:
        return self.class_head is not None

    @torch.inference_mode()
    def embed_with_classes(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None]:
        """Vectors as :meth:`embed`, and each image's top ImageNet classes (None: no head)."""
        if self.class_head is None or not images:
            return self.embed(images), None if self.class_head is None else []
        pooled, _, average = self.forward_with_stage(torch.from_numpy(self.batch(images)))
        return average_scales([pooled.numpy()]), self.class_head.top(average.numpy())

    @property
    def has_local_features(self) -> bool:
        """Local features come from the one pass at the preprocessing size."""
        return self.scales == (1.0,)

    @torch.inference_mode()
    def embed_with_local_features(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, list[TopClasses] | None, list[LocalFeatures]]:
        """Vectors and classes as :meth:`embed_with_classes`, and each image's local features
        (:mod:`lookalike.embed.local_features`), from one forward pass."""
        if not self.has_local_features:
            raise ValueError("local features need a single-scale embedder")
        if not images:
            return self.embed(images), None if self.class_head is None else [], []
        pooled, stage, average = self.forward_with_stage(torch.from_numpy(self.batch(images)))
        top = self.class_head.top(average.numpy()) if self.class_head is not None else None
        return average_scales([pooled.numpy()]), top, local_features(_array(stage))


class _Network(nn.Module):
    def __init__(self, embedder: TorchEmbedder) -> None:
        super().__init__()
        self.embedder = embedder
        self.backbone = embedder.backbone  # registers the weights as this module's own

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vectors, stage, average = self.embedder.forward_with_stage(images)
        return (vectors, stage, average) if self.embedder.averages_apart else (vectors, stage)


def average_scales(descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """Pooled descriptors of the same images at several scales, each (n, d) -> their mean
    after L2 normalisation, L2-normalised (float32 (n, d))."""
    return l2_normalise(np.mean([l2_normalise(d) for d in descriptors], axis=0))
