"""Any CLIP-style model as a plug-in: ``--model clip:DIR``, images and words in one space.

``DIR`` holds, as ``lookalike`` reads them (README "Search by words" shows how to export
OpenCLIP's ViT-B/32 into it):

* ``image_encoder.onnx``: input float32 (n, 3, S, S), normalised; output (n, dim).
* ``text_encoder.onnx``: input int64 token ids (n, context_length) (and ``attention_mask``
  if the graph has that input); output (n, dim).
* ``tokenizer.json``: the text encoder's tokenizer, in the Hugging Face ``tokenizers`` format.
* ``clip.json``: ``{"image_size": S, "mean": [3], "std": [3], "dim": d, "logit_scale": s,
  "context_length": L}`` (optional: ``"pad_id"`` (0), ``"crop"``: true for a centre crop
  as CLIP was trained, the default, false to letterbox).

Both encoders run in ONNX Runtime, so a CLIP index needs no PyTorch at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.embed.onnx import open_session
from lookalike.embed.preprocess import Preprocess
from lookalike.errors import ModelNotFoundError
from lookalike.normalise import l2_normalise

PREFIX = "clip:"
IMAGE_ENCODER, TEXT_ENCODER = "image_encoder.onnx", "text_encoder.onnx"
TOKENIZER, DESCRIPTION = "tokenizer.json", "clip.json"


def is_clip(model: str) -> bool:
    return model.startswith(PREFIX)


def canonical_clip(model: str) -> str:
    """``clip:DIR`` with DIR absolute, as an index stores it."""
    return PREFIX + str(Path(model.removeprefix(PREFIX)).expanduser().resolve())


@dataclass(frozen=True)
class ClipInfo:
    """What ``clip.json`` says."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    logit_scale: float
    context_length: int
    pad_id: int = 0
    crop: bool = True

    @classmethod
    def read(cls, path: Path) -> ClipInfo:
        try:
            raw = json.loads(path.read_text())
            return cls(
                image_size=int(raw["image_size"]),
                mean=_triple(raw["mean"]),
                std=_triple(raw["std"]),
                dim=int(raw["dim"]),
                logit_scale=float(raw["logit_scale"]),
                context_length=int(raw["context_length"]),
                pad_id=int(raw.get("pad_id", 0)),
                crop=bool(raw.get("crop", True)),
            )
        except OSError as exc:
            raise ModelNotFoundError(f"cannot read {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelNotFoundError(f"{path} is not a CLIP description: {exc!r}") from exc


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


class ClipEmbedder:
    """A CLIP model's two encoders: :meth:`embed` for images, :meth:`embed_text` for words,
    both L2-normalised in one ``dim``-dimensional space (cosine = CLIP's similarity)."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        self.folder = Path(folder).expanduser().resolve()
        missing = [
            name
            for name in (IMAGE_ENCODER, TEXT_ENCODER, TOKENIZER, DESCRIPTION)
            if not (self.folder / name).is_file()
        ]
        if missing:
            raise ModelNotFoundError(
                f"{self.folder} is no CLIP model folder: it lacks {', '.join(missing)} "
                "(see README, 'Search by words')"
            )
        self.info = ClipInfo.read(self.folder / DESCRIPTION)
        mode = "crop" if self.info.crop else "letterbox"
        self.preprocess = Preprocess(self.info.image_size, self.info.mean, self.info.std, mode)
        self.dim = self.info.dim
        self.image_size = self.preprocess.decode_side
        digest = hashlib.sha256((self.folder / IMAGE_ENCODER).read_bytes()).hexdigest()[:12]
        self.model_id = f"clip@{digest}-{self.preprocess.id}"
        self.threads = threads
        self._image: Any = None
        self._text: Any = None
        self._tokenizer: Any = None

    def _session(self, name: str) -> Any:
        try:
            return open_session(self.folder / name, self.threads)
        except Exception as exc:  # onnxruntime raises its own kinds for a bad file
            raise ModelNotFoundError(f"cannot load {self.folder / name}: {exc}") from exc

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> float32 (n, dim), L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._image is None:
            self._image = self._session(IMAGE_ENCODER)
        feed = {self._image.get_inputs()[0].name: self.preprocess.batch(images)}
        return self._vectors(self._image.run(None, feed)[0])

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> float32 (n, dim), L2-normalised, comparable with :meth:`embed`'s."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._text is None:
            from tokenizers import Tokenizer

            self._text = self._session(TEXT_ENCODER)
            tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER))
            length = self.info.context_length
            tokenizer.enable_truncation(length)
            tokenizer.enable_padding(length=length, pad_id=self.info.pad_id)
            self._tokenizer = tokenizer
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        inputs = [i.name for i in self._text.get_inputs()]
        feed = {inputs[0]: ids}
        if "attention_mask" in inputs:
            feed["attention_mask"] = np.array([e.attention_mask for e in encodings], np.int64)
        return self._vectors(self._text.run(None, feed)[0])

    def _vectors(self, output: np.ndarray) -> np.ndarray:
        vectors = np.asarray(output, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ModelNotFoundError(
                f"{self.folder}: an encoder gave vectors of shape {vectors.shape}, "
                f"clip.json says dim {self.dim}"
            )
        return l2_normalise(vectors)
