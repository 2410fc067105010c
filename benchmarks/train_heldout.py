"""Held-out figures for trained models: mAP@R on the validation labels a training never saw.

    python benchmarks/train_heldout.py MODEL_DIR [MODEL ...] [--dataset DIR]

Reads the dataset and the validation labels from MODEL_DIR/model.json (written by
``lookalike train``), embeds those labels' images with each model given (a registered name
such as ``mobilenet_v2``, or a model directory) exactly as ``lookalike index`` would, and prints
mAP@R and R@1 (each image queries all the others), with the seconds taken and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lookalike.decode.image import decode_image
from lookalike.embed.registry import create_embedder
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.metrics import evaluate_vectors

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a lookalike train output (gives the split)")
    parser.add_argument("models", nargs="*", help="models to compare (default: the model dir)")
    parser.add_argument("--dataset", type=Path, help="default: the one the model was trained on")
    args = parser.parse_args()
    training = json.loads((args.model_dir / "model.json").read_text())["training"]
    dataset = args.dataset or Path(training["dataset"])
    held_out = set(training["validation_labels"])
    items = [(p, label) for p, label in load_labelled_folder(dataset) if label in held_out]
    print(f"{dataset}: {len(held_out)} held-out labels, {len(items)} images")
    for name in args.models or [str(args.model_dir)]:
        tick = time.perf_counter()
        embedder = create_embedder(name)
        vectors = []
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            images = [decode_image(p, max_side=embedder.image_size).image for p, _ in batch]
            vectors.append(embedder.embed(images))
        report = evaluate_vectors(np.concatenate(vectors), [label for _, label in items])
        print(
            f"{name}: mAP@R {report.map_at_r:.4f}  R@1 {report.r_at_1:.3f}  "
            f"({time.perf_counter() - tick:.0f}s, load {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
