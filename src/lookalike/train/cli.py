"""``lookalike train DATASET --model NAME --out MODEL_DIR``: fine-tune or train a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lookalike.config import Settings
from lookalike.errors import LookalikeError
from lookalike.train import LOSSES, adapt
from lookalike.train.adapt import Adaptation

MODELS = ("seed_cnn", "mobilenet_v2", "efficientnet_lite0")
# Every trained model pools by GeM, so the default model's name trains the same network.
ALIASES = {"efficientnet_lite0_gem": "efficientnet_lite0"}

# Per-model defaults, measured on clipart (see the README's Train section): a pretrained
# backbone keeps its first blocks frozen (their feature maps cached once per augmented view)
# and learns 10x slower than the head; seed_cnn learns everything from scratch.
DEFAULTS: dict[str, dict[str, object]] = {
    "seed_cnn": {
        "frozen_blocks": 0,
        "backbone_lr_scale": 1.0,
        "train_batchnorm": True,
        "epochs": 6,
    },
    "mobilenet_v2": {"frozen_blocks": 17, "views": 3, "epochs": 10},
    "efficientnet_lite0": {"frozen_blocks": 0, "epochs": 5},
}


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        parents=[common],
        help="train a model on labelled folders (DATASET/<label>/<image>)",
        description="Metric learning on labelled folders. Labels are split into training and "
        "validation; validation mAP@R is reported each epoch and the best epoch is kept in "
        "MODEL_DIR, which `lookalike index --model MODEL_DIR` uses like a built-in model.",
    )
    p.add_argument("dataset", metavar="DATASET", help="folder of label folders of images")
    p.add_argument(
        "--model",
        required=True,
        choices=(*MODELS, *ALIASES),
        help="architecture to train (efficientnet_lite0_gem, the default model, is "
        "efficientnet_lite0: every trained model pools by GeM)",
    )
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="where the model goes")
    p.add_argument("--epochs", type=int, default=None, help="default: by model (10, seed_cnn 6)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--loss", choices=LOSSES, default="proxy_anchor")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, split, batches, augments")
    p.add_argument(
        "--lr", type=float, default=None, help="head learning rate (default 1e-4, seed_cnn 1e-3)"
    )
    p.add_argument(
        "--backbone-lr-scale", type=float, default=None, help="backbone lr / head lr (0.1)"
    )
    p.add_argument(
        "--freeze",
        type=int,
        default=None,
        metavar="N",
        dest="frozen_blocks",
        help="leading backbone blocks to keep frozen and cache (default: by model)",
    )
    p.add_argument(
        "--views", type=int, default=None, help="augmented views cached per image (default 3)"
    )
    p.add_argument("--dim", type=int, default=None, help="embedding size of a new linear head")
    p.add_argument("--labels-per-batch", type=int, default=8)
    p.add_argument("--images-per-label", type=int, default=4)
    p.add_argument("--val-fraction", type=float, default=0.5, help="labels held out (0.5)")
    p.add_argument(
        "--no-whiten",
        dest="whiten",
        action="store_false",
        help="do not end the model with whitening learned from the training labels (on by "
        "default: held-out clip art mAP@R +0.03 over the best epoch, README)",
    )
    p.set_defaults(run=run_train)
    add_adapt_parser(sub, common)


def add_adapt_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "adapt",
        parents=[common],
        help="adapt the index to its own images, without labels (self-supervised whitening)",
        description="Embed a sample of the indexed images again in augmented views (crop, "
        "flip, colour), take each image's views as one label, and learn the whitening that "
        "makes the vectors ignore what those views change. Searches of the index use it from "
        f"then on. `lookalike index` does this on its own once an index holds {adapt.ADAPT_FROM} "
        "images, and again each time it has doubled; this command adapts it now, whatever "
        "its size (`index --no-adapt` drops it, and stops the index adapting on its own). "
        "Measured with lookalike eval (README): MAP@R of icons 0.136 -> 0.153 and clip art "
        "0.297 -> 0.310 with efficientnet_lite0_gem, 0.112 -> 0.123 and 0.280 -> 0.293 with "
        "mobilenet_v2; copy detection R@1 among 1,981 photos 0.990 -> 0.996 (mobilenet_v2; "
        "one query of 672 lower with --orientations).",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=adapt.SAMPLE,
        metavar="N",
        help=f"indexed images to embed again (default {adapt.SAMPLE}; all when fewer)",
    )
    p.add_argument(
        "--views", type=int, default=adapt.VIEWS, help=f"augmented views each ({adapt.VIEWS})"
    )
    p.add_argument(
        "--shrinkage",
        type=float,
        default=adapt.SHRINKAGE,
        help=f"added to the views' covariance, times its mean eigenvalue ({adapt.SHRINKAGE:g})",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the sample and the augmentations")
    p.set_defaults(run=run_adapt)


def run_adapt(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.index import Index
    from lookalike.present.progress import progress_bar
    from lookalike.store import local_only

    quiet = getattr(args, "quiet", False)
    # A Milvus collection searches its vectors as they are: refused before the work.
    directory = local_only(settings.index, "adapt")
    with Index.open(directory) as index, progress_bar(quiet) as progress:
        if args.shrinkage < 0:
            raise LookalikeError(f"--shrinkage must be >= 0, got {args.shrinkage:g}")
        done = adapt.adapt_index(
            index, args.sample, args.views, args.shrinkage, args.seed, progress
        )
    if not quiet:
        print(describe_adaptation(done))
    return 0


def describe_adaptation(done: Adaptation) -> str:
    """One line: what ``lookalike adapt`` (or ``index --adapt``) learned from."""
    skipped = f"; {done.skipped} no longer decode" if done.skipped else ""
    return (
        f"adapted to {done.images} images x {done.views} views (shrinkage "
        f"{done.shrinkage:g}) in {done.seconds:.0f}s{skipped}"
    )


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.train.loop import TrainConfig, train  # PyTorch: only when training

    quiet = getattr(args, "quiet", False)
    given = {
        name: getattr(args, name)
        for name in ("epochs", "lr", "backbone_lr_scale", "frozen_blocks", "views")
        if getattr(args, name) is not None
    }
    model = ALIASES.get(args.model, args.model)
    config = TrainConfig(
        **{
            **DEFAULTS[model],
            **given,
            "dataset": str(Path(args.dataset).expanduser().resolve()),
            "model": model,
            "loss": args.loss,
            "dim": args.dim,
            "labels_per_batch": args.labels_per_batch,
            "images_per_label": args.images_per_label,
            "val_fraction": args.val_fraction,
            "seed": args.seed,
            "whiten": args.whiten,
        }
    )
    out = Path(args.out).expanduser()
    result = train(
        config,
        out,
        resume=args.resume,
        progress=not quiet and sys.stderr.isatty(),
        log=(lambda line: None) if quiet else (lambda line: print(line, flush=True)),
    )
    if not quiet:
        best, before = result.best, result.history[0]
        whitened = f", whitened {result.validation[0]:.4f}" if result.whitening else ""
        print(
            f"best epoch {best.epoch}: val mAP@R {best.map_at_r:.4f}{whitened} "
            f"(before training {before.map_at_r:.4f}); "
            f"{result.prepare_seconds + result.train_seconds:.0f}s "
            f"({result.cpu_seconds:.0f}s CPU, load {result.load:.1f}); model in {out.resolve()}"
        )
    return 0
