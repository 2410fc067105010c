"""The ``clip:DIR`` plug-in, with a tiny randomly initialised CLIP-shaped pair of encoders
that the test exports itself: images and words land in one space, searched through the CLI,
the library and the REST API the same way a real CLIP model would be."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from lookalike import Index
from lookalike.embed.clip import ClipEmbedder
from lookalike.embed.registry import create_embedder
from lookalike.errors import ModelNotFoundError
from lookalike.present.web.app import create_app
from lookalike.present.web.service import ServerConfig

DIM, SIZE, LENGTH = 8, 32, 6
WORDS = ["[PAD]", "[UNK]", "a", "cat", "dog", "on", "sofa", "red", "car"]


class ImageEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=4)
        self.proj = nn.Linear(16, DIM)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.relu(self.conv(images)).mean(dim=(2, 3)))  # type: ignore[no-any-return]


class TextEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(len(WORDS), 16, padding_idx=0)
        self.proj = nn.Linear(16, DIM)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.tokens(ids).mean(dim=1))  # type: ignore[no-any-return]


def export(module: nn.Module, example: torch.Tensor, name: str, path: Path) -> None:
    with warnings.catch_warnings():  # the TorchScript exporter, as lookalike.embed.onnx uses
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=[name],
            output_names=["embeddings"],
            dynamic_axes={name: {0: "n"}, "embeddings": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIP model folder in the documented layout, with seeded random weights."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    export(
        ImageEncoder(), torch.zeros(2, 3, SIZE, SIZE), "pixel_values", folder / "image_encoder.onnx"
    )
    export(
        TextEncoder(),
        torch.zeros(2, LENGTH, dtype=torch.int64),
        "input_ids",
        folder / "text_encoder.onnx",
    )
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    description = {
        "image_size": SIZE,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "dim": DIM,
        "logit_scale": 100.0,
        "context_length": LENGTH,
    }
    (folder / "clip.json").write_text(json.dumps(description))
    return folder


@pytest.fixture(scope="module")
def clip_index(
    clip_dir: Path, photo_library: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    directory = tmp_path_factory.mktemp("clip-index") / "index"
    with Index.create(directory, model=f"clip:{clip_dir}") as index:
        index.add([photo_library])
    return directory


def test_both_encoders_make_unit_vectors_of_one_space(clip_dir: Path) -> None:
    embedder = create_embedder(f"clip:{clip_dir}")
    assert isinstance(embedder, ClipEmbedder) and embedder.dim == DIM
    images = embedder.embed([Image.new("RGB", (50, 40), (200, 30, 30)), Image.new("RGB", (9, 90))])
    texts = embedder.embed_text(["a cat on a sofa", "red car", "words it never saw"])
    assert images.shape == (2, DIM) and texts.shape == (3, DIM)
    assert np.allclose(np.linalg.norm(np.vstack([images, texts]), axis=1), 1, atol=1e-5)
    assert embedder.model_id.startswith("clip@") and embedder.model_id.endswith(f"crop{SIZE}")


def test_a_folder_missing_a_part_is_one_clear_error(clip_dir: Path, tmp_path: Path) -> None:
    for name in ("image_encoder.onnx", "tokenizer.json", "clip.json"):
        (tmp_path / name).write_bytes((clip_dir / name).read_bytes())
    with pytest.raises(ModelNotFoundError, match="lacks text_encoder"):
        create_embedder(f"clip:{tmp_path}")
    (tmp_path / "text_encoder.onnx").write_bytes(b"not a graph")
    (tmp_path / "clip.json").write_text('{"image_size": 32}')
    with pytest.raises(ModelNotFoundError, match="not a CLIP description"):
        create_embedder(f"clip:{tmp_path}")


def test_text_scores_are_the_cosines_of_the_two_encoders(clip_index: Path, clip_dir: Path) -> None:
    embedder = ClipEmbedder(clip_dir)
    with Index.open(clip_index) as index:
        assert index.store.model_name == f"clip:{clip_dir}" and index.store.dim == DIM
        hits = index.search(text="a cat on a sofa", k=8)
        by_image = index.search(Path(hits[-1].path), k=1)
        assert len(hits) == 8 and by_image[0].path == hits[-1].path  # an image query too
        text = embedder.embed_text(["a cat on a sofa"])[0]
        for hit in hits:
            image = index.store.vector(hit.id)
            assert image is not None and abs(float(image @ text) - hit.score) < 1e-4


def test_cli_searches_a_clip_index_by_words_and_by_image(
    clip_index: Path, photo_library: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = run_cli(
        "search",
        "--index",
        str(clip_index),
        "--json",
        "-k",
        "3",
        "--text",
        "cat",
        "--text",
        "red car",
        str(photo_library / "chelsea.jpg"),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [
        str(photo_library / "chelsea.jpg"),
        "cat",
        "red car",
    ]
    assert all(len(line["results"]) == 3 for line in lines)
    assert lines[0]["results"][0]["path"] == str(photo_library / "chelsea.jpg")


def test_rest_text_route_on_a_clip_index(clip_index: Path, tmp_path: Path) -> None:
    app = create_app(ServerConfig(clip_index))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        out = client.get("/api/search/text", params={"q": "dog", "k": 4}).json()
        assert out["kind"] == "clip" and len(out["results"]) == 4 and out["matched"] == []
        assert client.get("/health").json()["features"]["text_search"] is True
