"""The training loop: metric learning on a labelled folder, validated on labels it never sees.

Data flow per run: decode every image once -> (optionally) run the frozen first blocks of the
backbone once per image and per augmented view, caching their feature maps -> each epoch,
batches of P labels x K images go through the trainable rest, the loss and the optimiser ->
embed the validation images and score mAP@R -> checkpoint; the best epoch's network, ended by
a whitening learned from the training labels (:mod:`lookalike.train.whitening`), is written as
a model directory.

Reproducible: every random draw (initial weights, batch order, augmentations) comes from
generators seeded by (seed, epoch, image), so a resumed run repeats what an uninterrupted one
would have done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.config import cache_home
from lookalike.decode.image import decode_image
from lookalike.embed.model_dir import save_model_dir
from lookalike.embed.model_info import WEIGHTS, ModelInfo
from lookalike.embed.preprocess import Preprocess
from lookalike.embed.registry import create_torch_embedder
from lookalike.embed.retrieval_net import RetrievalNet
from lookalike.errors import ImageError, LookalikeError
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.metrics import evaluate_vectors
from lookalike.train.augment import DECODE_SCALE, Augment
from lookalike.train.losses import create_loss
from lookalike.train.split import LabelSplit, split_labels
from lookalike.train.whitening import fit_label_whitening

CHECKPOINT = "checkpoint.pt"
FEATURE_CACHE_VERSION = 2  # bump when what the cache holds changes (2: plain training views)
EVAL_BATCH = 64


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's outcome (saved with it, checked on resume)."""

    dataset: str
    model: str
    loss: str = "proxy_anchor"
    epochs: int = 10
    labels_per_batch: int = 8  # P: a batch holds P labels ...
    images_per_label: int = 4  # ... and K images of each
    lr: float = 1e-4  # head, GeM p (and loss parameters, times the loss's lr_scale)
    backbone_lr_scale: float = 0.1  # backbone learning rate = lr * this
    weight_decay: float = 1e-4
    frozen_blocks: int = 0  # leading backbone blocks kept fixed; their outputs are cached
    views: int = 4  # augmented views cached per training image when frozen_blocks > 0
    train_batchnorm: bool = False  # update batch-norm statistics (from scratch); else frozen
    dim: int | None = None  # embedding size of our head (None: the backbone's width)
    gem_p: float = 3.0
    val_fraction: float = 0.5
    seed: int = 0
    whiten: bool = True  # end the network with whitening learned from the training labels

    @property
    def batch_size(self) -> int:
        return self.labels_per_batch * self.images_per_label


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0: before training
    loss: float
    map_at_r: float
    r_at_1: float
    seconds: float
    images_per_s: float


@dataclass(frozen=True)
class WhiteningRecord:
    """The learned whitening's shrinkage (None: the plain vectors did best), the training
    vectors it was learned from, validation (mAP@R, R@1) per shrinkage tried, and the chosen
    one's."""

    shrinkage: float | None
    vectors: int
    tried: dict[float | None, tuple[float, float]]
    seconds: float

    @property
    def map_at_r(self) -> float:
        return self.tried[self.shrinkage][0]

    @property
    def r_at_1(self) -> float:
        return self.tried[self.shrinkage][1]


@dataclass
class TrainResult:
    config: TrainConfig
    split: LabelSplit
    n_train: int
    n_validation: int
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    prepare_seconds: float = 0.0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time, all threads: the machine's share we used
    load: float = 0.0  # 1-minute load average at the last epoch (the machine is shared)
    model: ModelInfo | None = None
    whitening: WhiteningRecord | None = None

    @property
    def best(self) -> EpochRecord:
        return next(r for r in self.history if r.epoch == self.best_epoch)

    @property
    def validation(self) -> tuple[float, float]:
        """The model's validation (mAP@R, R@1): the best epoch's, whitened where it was."""
        final = self.whitening or self.best
        return final.map_at_r, final.r_at_1


Log = Callable[[str], None]


def train(
    config: TrainConfig, out: Path, resume: bool = False, progress: bool = False, log: Log = print
) -> TrainResult:
    """Train per ``config``, writing ``out/checkpoint.pt`` every epoch and the best epoch's
    model directory into ``out``. ``resume`` continues from the checkpoint."""
    started, cpu_started = time.perf_counter(), time.process_time()
    checkpoint = _read_checkpoint(out, config) if resume else None
    if not resume and (out / CHECKPOINT).exists():
        raise LookalikeError(f"{out} already holds a training run; use --resume or another --out")
    torch.manual_seed(config.seed)
    items = load_labelled_folder(Path(config.dataset))
    split = split_labels([label for _, label in items], config.val_fraction, config.seed)
    train_items, val_items = split.items(items)
    embedder = create_torch_embedder(config.model)
    net = RetrievalNet(embedder.backbone, config.gem_p, config.dim)
    net.channels_last()
    stages = _Stages(net, config.frozen_blocks)
    loss_fn = create_loss(config.loss, len(split.train), net.dim)
    optimizer = _optimizer(net, stages, loss_fn, config)
    result = TrainResult(config, split, len(train_items), len(val_items))

    label_ids = {label: i for i, label in enumerate(split.train)}
    data = _Data(
        config, embedder.preprocess, stages, train_items, val_items, embedder.model_id, log
    )
    labels = np.asarray([label_ids[data.train_labels[i]] for i in range(data.n_train)])
    result.n_train, result.n_validation = data.n_train, len(data.val_labels)
    result.prepare_seconds = time.perf_counter() - started
    log(
        f"{config.model}: {len(split.train)} training labels ({data.n_train} images), "
        f"{len(split.validation)} validation labels ({len(data.val_labels)} images); "
        f"prepared in {result.prepare_seconds:.0f}s"
    )

    first_epoch = 1
    if checkpoint is not None:
        net.load_state_dict(checkpoint["net"])
        loss_fn.load_state_dict(checkpoint["loss"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        result.history = [EpochRecord(**r) for r in checkpoint["history"]]
        result.best_epoch = int(checkpoint["best_epoch"])
        result.train_seconds = float(checkpoint["train_seconds"])
        cpu_started -= float(checkpoint["cpu_seconds"])
        first_epoch = int(checkpoint["epoch"]) + 1
        log(f"resumed after epoch {first_epoch - 1}")
    else:
        score = _evaluate(net, data)
        result.history.append(EpochRecord(0, math.nan, *score, 0.0, 0.0))
        result.cpu_seconds, result.load = time.process_time() - cpu_started, os.getloadavg()[0]
        log(f"epoch 0 (before training)  val mAP@R {score[0]:.4f}  R@1 {score[1]:.3f}")
        _save_best(out, net, config, embedder.preprocess, result)
        _write_checkpoint(out, 0, net, loss_fn, optimizer, result)

    for epoch in range(first_epoch, config.epochs + 1):
        tick = time.perf_counter()
        loss, rate = _train_epoch(net, stages, loss_fn, optimizer, data, labels, epoch, progress)
        score = _evaluate(net, data)
        seconds = time.perf_counter() - tick
        record = EpochRecord(epoch, loss, *score, seconds, rate)
        result.history.append(record)
        result.train_seconds += seconds
        result.cpu_seconds, result.load = time.process_time() - cpu_started, os.getloadavg()[0]
        best = score[0] > result.best.map_at_r
        if best:
            result.best_epoch = epoch
            _save_best(out, net, config, embedder.preprocess, result)
        _write_checkpoint(out, epoch, net, loss_fn, optimizer, result)
        log(
            f"epoch {epoch}/{config.epochs}  loss {loss:.4f}  val mAP@R {score[0]:.4f}  "
            f"R@1 {score[1]:.3f}  {seconds:.0f}s  {rate:.1f} img/s" + ("  (best)" if best else "")
        )

    # The card gets the whole history; the weights stay the best epoch's. A finished run's
    # weights end with its whitening, which is learned again from them below.
    best_state = torch.load(out / WEIGHTS, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in best_state.items() if not k.startswith("whiten.")})
    if config.whiten:
        result.whitening = _learn_whitening(net, data, log)
        result.train_seconds += result.whitening.seconds
    result.model = _save_best(out, net, config, embedder.preprocess, result)
    return result


def _learn_whitening(net: RetrievalNet, data: _Data, log: Log) -> WhiteningRecord:
    """End ``net`` with the whitening :func:`fit_label_whitening` picks: learned from the
    training images as they are, chosen by validation mAP@R. (Augmented views instead, or
    besides, did no better on clip art and worse on icons: 0.207 and 0.214 against 0.229.)"""
    tick = time.perf_counter()
    vectors = _vectors(net, data, data.train_plain_batches())
    fitted = fit_label_whitening(
        vectors, data.train_labels, _vectors(net, data, data.val_batches()), data.val_labels
    )
    net.set_whitening(fitted.whitening)
    record = WhiteningRecord(
        fitted.shrinkage, len(vectors), fitted.validation, time.perf_counter() - tick
    )
    plain = fitted.shrinkage is None
    chosen = "no whitening did best" if plain else f"shrinkage {fitted.shrinkage:g}"
    log(
        f"learned whitening from {len(vectors)} training vectors ({chosen})  "
        f"val mAP@R {record.map_at_r:.4f}  R@1 {record.r_at_1:.3f}  {record.seconds:.0f}s"
    )
    return record


class _Stages:
    """The backbone cut in two: a frozen ``prefix`` (run once per image when cached) and the
    trainable ``suffix``; both map to what the next part of the network expects."""

    def __init__(self, net: RetrievalNet, frozen_blocks: int) -> None:
        backbone = net.backbone
        self.frozen: nn.Module | None = None
        if frozen_blocks <= 0:
            self.prefix: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
            self.suffix: Callable[[torch.Tensor], torch.Tensor] = backbone.forward_features
            return
        blocks = backbone.blocks()
        if frozen_blocks >= len(blocks):
            raise LookalikeError(
                f"cannot freeze {frozen_blocks} blocks of {type(backbone).__name__}: "
                f"it has {len(blocks)} feature blocks to split"
            )
        self.frozen = nn.Sequential(*blocks[:frozen_blocks])
        self.frozen.requires_grad_(False)
        self.prefix = self.frozen
        self.suffix = nn.Sequential(*blocks[frozen_blocks:])

    def set_mode(self, net: RetrievalNet, training: bool, train_batchnorm: bool) -> None:
        net.train(training)
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not train_batchnorm:
                module.eval()  # pretrained statistics: small metric-learning batches spoil them
        if self.frozen is not None:
            self.frozen.eval()


class _Data:
    """Training and validation inputs, ready for the trainable stage.

    With a frozen prefix, its feature maps are computed once: ``views`` augmented views per
    training image (an epoch picks one view per image) and one plain view per validation image.
    Without, training images are augmented afresh at every step.
    """

    def __init__(
        self,
        config: TrainConfig,
        preprocess: Preprocess,
        stages: _Stages,
        train_items: Sequence[tuple[Path, str]],
        val_items: Sequence[tuple[Path, str]],
        model_id: str,
        log: Log,
    ) -> None:
        self.config, self.preprocess, self.stages = config, preprocess, stages
        self.augment = Augment()
        self.train_images: list[Image.Image] = []
        self.val_images: list[Image.Image] = []
        self.train_cache: torch.Tensor | None = None  # (n, views, c, h, w) float16
        self.train_plain_cache: torch.Tensor | None = None  # (n, c, h, w) float16, unaugmented
        self.val_cache: torch.Tensor | None = None  # (n, c, h, w) float16
        cache_file = None
        if stages.frozen is not None:
            cache_file = _cache_file(
                model_id, config, preprocess, self.augment, train_items, val_items
            )
            if cache_file.is_file():
                saved = torch.load(cache_file, map_location="cpu", weights_only=True)
                self.train_cache, self.val_cache = saved["train"], saved["val"]
                self.train_plain_cache = saved["train_plain"]
                self.train_labels, self.val_labels = saved["train_labels"], saved["val_labels"]
                self.n_train = len(self.train_labels)
                log(f"frozen blocks' output read from the cache {cache_file}")
                return
        tick = time.perf_counter()
        train_images, self.train_labels = _decode(train_items, preprocess.size, DECODE_SCALE, log)
        val_images, self.val_labels = _decode(val_items, preprocess.size, 1.0, log)
        self.n_train = len(train_images)
        log(f"decoded {self.n_train + len(val_images)} images in {time.perf_counter() - tick:.0f}s")
        if cache_file is None:
            self.train_images, self.val_images = train_images, val_images
            return
        tick = time.perf_counter()
        views = [(i, v) for i in range(self.n_train) for v in range(config.views)]
        # In batches: MobileNetV2 runs 3x faster per image on 32 images than on 4.
        maps = torch.cat(
            [
                self._prefix(
                    [
                        self.augment(train_images[i], random.Random(f"{config.seed}:view{v}:{i}"))
                        for i, v in views[s : s + EVAL_BATCH]
                    ]
                )
                for s in range(0, len(views), EVAL_BATCH)
            ]
        )
        self.train_cache = maps.reshape(self.n_train, config.views, *maps.shape[1:])
        self.val_cache = self._prefix_all(val_images)
        self.train_plain_cache = self._prefix_all(train_images)
        log(
            f"computed the frozen blocks' output for {config.views} views of each training "
            f"image and for each training and validation image as it is in "
            f"{time.perf_counter() - tick:.0f}s"
        )
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        torch.save(
            {
                "train": self.train_cache,
                "train_plain": self.train_plain_cache,
                "val": self.val_cache,
                "train_labels": self.train_labels,
                "val_labels": self.val_labels,
            },
            tmp,
        )
        os.replace(tmp, cache_file)

    @torch.inference_mode()
    def _prefix(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.stages.prefix(_tensor(self.preprocess.batch(images))).to(torch.float16)

    def _prefix_all(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.cat(
            [self._prefix(images[s : s + EVAL_BATCH]) for s in range(0, len(images), EVAL_BATCH)]
        )

    def train_batch(self, indices: Sequence[int], epoch: int) -> torch.Tensor:
        """Inputs of the trainable stage for these training images at this epoch."""
        seed = self.config.seed
        if self.train_cache is not None:
            view = [
                random.Random(f"{seed}:{epoch}:{i}").randrange(self.config.views) for i in indices
            ]
            return _tensor(self.train_cache[list(indices), view])
        images = [
            self.augment(self.train_images[i], random.Random(f"{seed}:{epoch}:{i}"))
            for i in indices
        ]
        return _tensor(self.preprocess.batch(images))

    def train_plain_batches(self) -> list[torch.Tensor]:
        """The training images as they are (no augmentation), in batches for the trainable
        stage: what the learned whitening is fitted on."""
        return _batches_of(self.train_plain_cache, self.train_images, self.preprocess)

    def val_batches(self) -> list[torch.Tensor]:
        return _batches_of(self.val_cache, self.val_images, self.preprocess)


def _batches_of(
    cache: torch.Tensor | None, images: Sequence[Image.Image], preprocess: Preprocess
) -> list[torch.Tensor]:
    """The trainable stage's inputs in batches: the cached frozen maps, else the images."""
    if cache is not None:
        return [_tensor(cache[s : s + EVAL_BATCH]) for s in range(0, len(cache), EVAL_BATCH)]
    return [
        _tensor(preprocess.batch(images[s : s + EVAL_BATCH]))
        for s in range(0, len(images), EVAL_BATCH)
    ]


def _tensor(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 (n, c, h, w) in channels-last memory order, as the network's weights are."""
    tensor = torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch
    return tensor.float().contiguous(memory_format=torch.channels_last)


def _cache_file(
    model_id: str,
    config: TrainConfig,
    preprocess: Preprocess,
    augment: Augment,
    train_items: Sequence[tuple[Path, str]],
    val_items: Sequence[tuple[Path, str]],
) -> Path:
    """Where the frozen blocks' output for these inputs is kept between runs (and resumes):
    named by a hash of everything it depends on, files' sizes and times included."""
    files = [(str(p), label, *_stat(p)) for p, label in [*train_items, *val_items]]
    what = [
        FEATURE_CACHE_VERSION,
        model_id,
        config.frozen_blocks,
        config.views,
        config.seed,
        repr(preprocess),
        repr(augment),
        DECODE_SCALE,
        len(train_items),
        files,
    ]
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]
    return cache_home() / "train-features" / f"{config.model}-{digest}.pt"


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _decode(
    items: Sequence[tuple[Path, str]], size: int, scale: float, log: Log
) -> tuple[list[Image.Image], list[str]]:
    images, labels = [], []
    for path, label in items:
        try:
            images.append(decode_image(path, max_side=round(size * scale)).image)
        except ImageError as exc:
            log(f"skipped {path}: {exc}")
            continue
        labels.append(label)
    return images, labels


def _optimizer(
    net: RetrievalNet, stages: _Stages, loss_fn: nn.Module, config: TrainConfig
) -> torch.optim.Optimizer:
    """AdamW with a smaller learning rate on the (pretrained) backbone than on the head."""
    head = {id(p) for p in net.head_parameters()}
    backbone = [p for p in net.parameters() if p.requires_grad and id(p) not in head]
    groups: list[dict[str, Any]] = [
        {"params": backbone, "lr": config.lr * config.backbone_lr_scale},
        {"params": net.head_parameters(), "lr": config.lr, "weight_decay": 0.0},
    ]
    loss_params = list(loss_fn.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": config.lr * getattr(loss_fn, "lr_scale", 1.0)})
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def _batches(labels: np.ndarray, config: TrainConfig, epoch: int) -> list[list[int]]:
    """One epoch of P-labels x K-images batches, about one pass over the training images."""
    rng = np.random.default_rng([config.seed, epoch])
    by_label = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    p = min(config.labels_per_batch, len(by_label))
    k = config.images_per_label
    batches = []
    for _ in range(max(1, math.ceil(len(labels) / (p * k)))):
        chosen = rng.choice(len(by_label), size=p, replace=False)
        batch: list[int] = []
        for c in chosen:
            members = by_label[c]
            batch += rng.choice(members, size=k, replace=len(members) < k).tolist()
        batches.append(batch)
    return batches


def _train_epoch(
    net: RetrievalNet,
    stages: _Stages,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: _Data,
    labels: np.ndarray,
    epoch: int,
    progress: bool,
) -> tuple[float, float]:
    """One epoch; returns (mean loss, training images per second)."""
    config = data.config
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    stages.set_mode(net, True, config.train_batchnorm)
    batches = _batches(labels, config, epoch)
    bar = _bar(progress, len(batches) * config.batch_size, epoch, config.epochs)
    total, seen, tick = 0.0, 0, time.perf_counter()
    for indices in batches:
        inputs = data.train_batch(indices, epoch)
        embeddings = net.embed_features(stages.suffix(inputs))
        loss = loss_fn(embeddings, torch.from_numpy(labels[indices]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(indices)
        seen += len(indices)
        if bar is not None:
            bar.update(len(indices))
            bar.set_postfix(loss=f"{loss.item():.4f}")  # tqdm shows images/s itself
    if bar is not None:
        bar.close()
    stages.set_mode(net, False, config.train_batchnorm)
    return total / seen, seen / (time.perf_counter() - tick)


def _evaluate(net: RetrievalNet, data: _Data) -> tuple[float, float]:
    """Validation (mAP@R, R@1): each validation image queries all the others."""
    report = evaluate_vectors(_vectors(net, data, data.val_batches()), data.val_labels)
    return report.map_at_r, report.r_at_1


@torch.inference_mode()
def _vectors(net: RetrievalNet, data: _Data, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """float32 (n, dim) embeddings of the trainable stage's input batches."""
    net.eval()
    vectors = torch.cat([net.embed_features(data.stages.suffix(b)) for b in batches])
    return vectors.numpy().astype(np.float32)


def _bar(progress: bool, total: int, epoch: int, epochs: int) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, unit="img", desc=f"epoch {epoch}/{epochs}", file=sys.stderr, leave=False
    )


# checkpoints and the model directory


def _write_checkpoint(
    out: Path,
    epoch: int,
    net: RetrievalNet,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
) -> None:
    """Everything needed to continue after ``epoch``, replaced atomically."""
    state = {
        "config": dataclasses.asdict(result.config),
        "epoch": epoch,
        "net": net.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [dataclasses.asdict(r) for r in result.history],
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "cpu_seconds": result.cpu_seconds,
    }
    tmp = out / f".{CHECKPOINT}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / CHECKPOINT)


def _read_checkpoint(out: Path, config: TrainConfig) -> dict[str, Any]:
    path = out / CHECKPOINT
    if not path.is_file():
        raise LookalikeError(f"nothing to resume: {path} does not exist")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    saved = state["config"]
    changed = [
        f"{name} {saved.get(name)!r} -> {value!r}"
        for name, value in dataclasses.asdict(config).items()
        if name != "epochs" and saved.get(name) != value
    ]
    if changed:
        raise LookalikeError(f"cannot resume with other settings: {'; '.join(changed)}")
    return state


def _save_best(
    out: Path, net: RetrievalNet, config: TrainConfig, preprocess: Preprocess, result: TrainResult
) -> ModelInfo:
    training = {
        "dataset": config.dataset,
        "settings": dataclasses.asdict(config),
        "train_labels": list(result.split.train),
        "validation_labels": list(result.split.validation),
        "best_epoch": result.best_epoch,
        "validation": dict(zip(("map_at_r", "r_at_1"), result.validation, strict=True)),
        "best_epoch_validation": {"map_at_r": result.best.map_at_r, "r_at_1": result.best.r_at_1},
        "whitening": None
        if result.whitening is None
        else {
            "shrinkage": result.whitening.shrinkage,
            "vectors": result.whitening.vectors,
            "validation_map_at_r_by_shrinkage": {
                str(k): v[0] for k, v in result.whitening.tried.items()
            },
        },
        "before_training": {
            "map_at_r": result.history[0].map_at_r,
            "r_at_1": result.history[0].r_at_1,
        },
    }
    return save_model_dir(
        out, net, config.model, preprocess, model_card(result), {"training": training}
    )


def _whitening_row(record: WhiteningRecord | None) -> str:
    if record is None:
        return "| (no learned whitening: `--no-whiten`) | | |"
    if record.shrinkage is None:
        return "| (no learned whitening: the plain vectors did best) | | |"
    return (
        f"| this model: the best epoch + whitening learned from the training labels "
        f"(shrinkage {record.shrinkage:g}, {record.vectors} vectors) "
        f"| {record.map_at_r:.4f} | {record.r_at_1:.3f} |"
    )


def model_card(result: TrainResult) -> str:
    """MODEL_CARD.md: what the model was trained on, how, and how well it does."""
    c, best, before = result.config, result.best, result.history[0]
    settings = "\n".join(f"| {k} | {v} |" for k, v in dataclasses.asdict(c).items())
    rows = "\n".join(
        f"| {r.epoch} | {'' if math.isnan(r.loss) else f'{r.loss:.4f}'} | {r.map_at_r:.4f} "
        f"| {r.r_at_1:.3f} | {r.seconds:.0f} | {r.images_per_s:.1f} |"
        for r in result.history
    )
    return f"""# {c.model} trained by lookalike train

Image embedding for search by similarity: `{c.model}` backbone, GeM pooling with a learned
exponent, {"its own head" if c.dim is None else f"a {c.dim}-d linear head"}, L2-normalised.
Use it like a built-in model: `lookalike index --model THIS_DIRECTORY PATH`.

## Training data

`{c.dataset}`: labelled folders, labels split (seed {c.seed}) into
{len(result.split.train)} training labels ({result.n_train} images) and
{len(result.split.validation)} validation labels ({result.n_validation} images) never seen
in training.

- training: {", ".join(result.split.train)}
- validation: {", ".join(result.split.validation)}

## Validation (held-out labels; each image queries all the others)

| | mAP@R | R@1 |
| --- | ---: | ---: |
| before training | {before.map_at_r:.4f} | {before.r_at_1:.3f} |
| the best epoch ({best.epoch}) | {best.map_at_r:.4f} | {best.r_at_1:.3f} |
{_whitening_row(result.whitening)}

| epoch | loss | val mAP@R | val R@1 | seconds | images/s |
| ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

Data preparation (decoding, cached frozen features) took {result.prepare_seconds:.0f} s,
training and validation {result.train_seconds:.0f} s; {result.cpu_seconds:.0f} s of CPU time
in all (load average {result.load:.1f} at the end, on {os.cpu_count()} cores).

## Settings

| setting | value |
| --- | --- |
{settings}
"""
