"""Self-supervised adaptation to a collection: whitening learned from its own images, no labels.

What a search should not care about in this collection (framing, mirroring, lighting, colour:
what the training augmentations change) is measured on the collection itself. A sample of
the indexed images is embedded again in several augmented views; the views of one image are
treated as one label, and :func:`~lookalike.store.whitening.learn_label_whitening` shrinks
the directions along which an image's views move and strengthens the rest. The result is a
closed-form last layer, stored as the index's whitening, so every vector and every query
goes through it. (Fine-tuning the network on the same views with SimCLR's loss was tried
first and lost mAP@R, README "Train".)
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.decode.image import decode_image
from lookalike.embed.model_info import is_model_dir, read_model_info
from lookalike.errors import ImageError, LookalikeError, ModelNotFoundError
from lookalike.index import Index, Progress
from lookalike.store.whitening import ADAPTED, learn_label_whitening
from lookalike.train.augment import DECODE_SCALE, Augment

SAMPLE = 2000  # indexed images embedded again: enough for a 1280-d within-image covariance
VIEWS = 3  # augmented views of each
# ``Index.add`` adapts an index on its own from this many images (README "Adapting an index":
# from about 500 images on, both public sets gained; at 200, clip art lost), and again each
# time it has grown GROWTH-fold since: up to SAMPLE x VIEWS forward passes each time.
ADAPT_FROM = 500
GROWTH = 2
# Chosen on the public sets (README): 1 did best over clip art and icons together
# (0.3 helped icons most, 3 clip art).
SHRINKAGE = 1.0
BATCH = 32


@dataclass(frozen=True)
class Adaptation:
    """What :func:`adapt_index` learned from: images that decoded, views of each, shrinkage."""

    images: int
    views: int
    shrinkage: float
    skipped: int
    seconds: float


def adapt_index(
    index: Index,
    sample: int = SAMPLE,
    views: int = VIEWS,
    shrinkage: float = SHRINKAGE,
    seed: int = 0,
    progress: Progress | None = None,
) -> Adaptation:
    """Learn the collection's augmentation-invariant whitening from ``sample`` of its images
    (seeded draw; all of them when fewer) in ``views`` augmented views each, and make it the
    index's whitening (``Index.add`` adapts it again as it grows). Files that no longer
    decode are skipped."""
    if views < 2:
        raise LookalikeError(f"adapt needs at least 2 views of each image, got {views}")
    if sample < 2:
        raise LookalikeError(f"adapt needs a sample of at least 2 images, got {sample}")
    tick = time.perf_counter()
    records = list(index.records())
    chosen = random.Random(seed).sample(records, min(sample, len(records)))
    embedder = index.embedder
    augment = Augment()
    vectors: list[np.ndarray] = []
    labels: list[int] = []
    skipped = 0
    for start in range(0, len(chosen), BATCH):
        batch: list[Image.Image] = []
        for record in chosen[start : start + BATCH]:
            try:
                image = decode_image(
                    record.path, max_side=round(embedder.image_size * DECODE_SCALE)
                ).image
            except ImageError:
                skipped += 1
                continue
            batch += [augment(image, _rng(seed, record.id, v)) for v in range(views)]
            labels += [record.id] * views
        if batch:
            vectors.append(embedder.embed(batch))
        if progress is not None:
            progress(min(start + BATCH, len(chosen)), len(chosen))
    images = len(labels) // views
    if images < 2:
        raise LookalikeError(
            f"adapt needs at least 2 indexed images that decode, found {images}"
            + (f" ({skipped} no longer decode)" if skipped else "")
        )
    learned = learn_label_whitening(np.concatenate(vectors), labels, shrinkage)
    with index.writing() as store:
        index.use_whitening(dataclasses.replace(learned, kind=ADAPTED, collection=len(records)))
        store.set_adapts(True)
    return Adaptation(images, views, shrinkage, skipped, time.perf_counter() - tick)


def adaptation_due(index: Index) -> bool:
    """Whether the index should adapt (again) on its own: it may (``Store.adapts``), holds
    ADAPT_FROM images or more, and has no whitening yet, or an adapted one learned when it
    held fewer than 1 / GROWTH of its images. A whitening the user chose is kept, and a
    trained model that ends with its own (``lookalike train``) is not adapted: adapting it lost
    held-out MAP@R on clip art and icons alike (README "Train")."""
    count = len(index)
    if count < ADAPT_FROM or not adapts_on_its_own(index):
        return False
    whitening = index.store.whitening()
    if whitening is None:
        return True
    return whitening.kind == ADAPTED and count >= GROWTH * whitening.collection


def adapts_on_its_own(index: Index) -> bool:
    """Whether :meth:`Index.add` adapts this index when due: its store may (``Store.adapts``)
    and its model does not end with a learned whitening of its own."""
    return index.store.adapts() and not ends_whitened(index.store.model_name)


def ends_whitened(model_name: str) -> bool:
    """Whether ``model_name`` is a trained model directory whose network ends with a learned
    whitening (read from its ``model.json`` only: an unchanged ``index`` run must start
    without PyTorch)."""
    if not is_model_dir(model_name):
        return False
    try:
        return read_model_info(Path(model_name)).whitened
    except ModelNotFoundError:
        return False


def _rng(seed: int, image_id: int, view: int) -> random.Random:
    return random.Random(f"{seed}:adapt:{image_id}:{view}")
