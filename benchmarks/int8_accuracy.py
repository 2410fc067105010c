"""Does int8 quantisation pay? mAP@R and speed of float32 and int8 ONNX models.

    python benchmarks/int8_accuracy.py [DATA] [--model mobilenet_v2] [--sets clipart icons]

For each labelled set under DATA (default /work/data/eval), embeds every image with the
float32 and the int8 model (:func:`lookalike.embed.onnx.quantize_int8`, calibrated on
scikit-image's photos, not on these sets) and prints MAP@R and R@1 of each, the loss in
points, and the images/s of inference alone. int8 should be the default only where it loses
less than one point of MAP@R on every set and is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from lookalike.decode.image import decode_image
from lookalike.embed.onnx import OnnxEmbedder
from lookalike.embed.registry import create_embedder
from lookalike.evaluate.datasets import load_labelled_folder
from lookalike.evaluate.metrics import evaluate_vectors

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path("/work/data/eval"))
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--sets", nargs="+", default=["clipart", "icons"])
    args = parser.parse_args()

    embedders = {
        "float32": create_embedder(args.model, runtime="onnx"),
        "int8": create_embedder(args.model, runtime="onnx-int8"),
    }
    print(f"model {args.model}; load average {os.getloadavg()[0]:.2f}, cores {os.cpu_count()}")
    for name in args.sets:
        items = load_labelled_folder(args.data / name)
        labels = [label for _, label in items]
        size = embedders["float32"].image_size
        images = [decode_image(path, size).image for path, _ in items]
        for precision, embedder in embedders.items():
            assert isinstance(embedder, OnnxEmbedder)
            batches = [
                embedder.preprocess.batch(images[i : i + BATCH])
                for i in range(0, len(images), BATCH)
            ]
            embedder.run(batches[0])  # export, quantise, warm up
            start = time.perf_counter()
            vectors = np.concatenate([embedder.run(batch) for batch in batches])
            speed = len(images) / (time.perf_counter() - start)
            report = evaluate_vectors(vectors, labels)
            if precision == "float32":
                reference = report.map_at_r
            print(
                f"{name:8} {precision:8} MAP@R {100 * report.map_at_r:6.2f}  "
                f"R@1 {100 * report.r_at_1:6.2f}  loss {100 * (reference - report.map_at_r):5.2f} "
                f"points  {speed:6.1f} images/s  ({embedder.model_id})"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
