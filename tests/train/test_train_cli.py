"""``lookalike train`` end to end on real photos: a model directory that ``index`` and
``search`` use, and a resumed run that ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from lookalike.demo import write_photos
from lookalike.evaluate.edits import apply_edit
from lookalike.present.cli import main

pytestmark = pytest.mark.slow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # one label each
EDITS = ("centre_crop", "flip", "rotate_10", "greyscale", "downscale_160")
MODEL = "seed_cnn"  # from scratch, small: fast enough to train twice in a test
SMALL = ["--labels-per-batch", "2", "--images-per-label", "3", "--views", "2", "--seed", "7"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATASET/<photo>/<edit>.jpg: 4 labels of 6 real images."""
    root = tmp_path_factory.mktemp("dataset")
    for path in write_photos(tmp_path_factory.mktemp("photos"), PHOTOS):
        folder = root / path.stem
        folder.mkdir()
        with Image.open(path) as image:
            image.save(folder / "original.jpg")
            for edit in EDITS:
                apply_edit(edit, image).save(folder / f"{edit}.jpg")
    return root


def train(dataset: Path, out: Path, epochs: int, *extra: str, model: str = MODEL) -> int:
    args = ["train", str(dataset), "--model", model, "--out", str(out), "--epochs", str(epochs)]
    return main([*args, *SMALL, *extra])


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "straight"
    assert train(dataset, out, 2) == 0
    return out


def test_model_directory_describes_the_training(trained: Path) -> None:
    meta = json.loads((trained / "model.json").read_text())
    assert meta["architecture"] == MODEL
    assert meta["model_id"].startswith(f"{MODEL}-trained-")
    assert meta["pooling"]["name"] == "gem" and meta["pooling"]["p"] > 1.0
    training = meta["training"]
    assert sorted(training["train_labels"] + training["validation_labels"]) == sorted(PHOTOS)
    assert not set(training["train_labels"]) & set(training["validation_labels"])
    card = (trained / "MODEL_CARD.md").read_text()
    assert all(label in card for label in PHOTOS)
    assert "mAP@R" in card and "| 2 |" in card  # the epoch table reached epoch 2
    # Whitening learned from the training labels, kept where it did best on validation.
    whitening = training["whitening"]
    tried = whitening["validation_map_at_r_by_shrinkage"]
    assert len(tried) == 6 and training["validation"]["map_at_r"] == max(tried.values())
    assert meta["whitened"] == (whitening["shrinkage"] is not None)
    assert max(tried.values()) >= training["best_epoch_validation"]["map_at_r"] == tried["None"]
    assert "whitening" in card


def test_no_whiten_keeps_the_best_epoch_as_it_is(dataset: Path, tmp_path: Path) -> None:
    assert train(dataset, tmp_path / "plain", 1, "--no-whiten") == 0
    meta = json.loads((tmp_path / "plain" / "model.json").read_text())
    training = meta["training"]
    assert meta["whitened"] is False and training["whitening"] is None
    assert training["validation"] == training["best_epoch_validation"]
    assert "--no-whiten" in (tmp_path / "plain" / "MODEL_CARD.md").read_text()


def test_index_and_search_use_the_model_directory(
    trained: Path,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(trained.parent)  # a relative --model: the index must keep it absolute
    index = str(tmp_path / "index")
    assert main(["index", str(dataset), "--index", index, "--model", trained.name, "-q"]) == 0
    capsys.readouterr()
    assert main(["info", "--index", index, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    meta = json.loads((trained / "model.json").read_text())
    assert info["model"] == str(trained.resolve())
    assert (info["model_id"], info["dim"], info["images"]) == (meta["model_id"], meta["dim"], 24)

    monkeypatch.chdir(tmp_path)  # searching from elsewhere reopens the model by its path
    query = dataset / "coffee" / "original.jpg"
    assert main(["search", "--index", index, "--json", "-k", "3", str(query)]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits[0]["path"] == str(query) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_resumed_run_ends_where_an_uninterrupted_one_does(
    trained: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    assert train(dataset, out, 1) == 0  # "interrupted" after epoch 1
    assert train(dataset, out, 2, "--resume") == 0
    straight = torch.load(trained / "checkpoint.pt", weights_only=True)
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == straight["epoch"] == 2
    for name, tensor in straight["net"].items():
        assert torch.equal(tensor, resumed["net"][name]), name
    assert [r["map_at_r"] for r in resumed["history"]] == [
        r["map_at_r"] for r in straight["history"]
    ]
    # the same seed gives the same weights, so the same model id
    assert (
        json.loads((out / "model.json").read_text())["model_id"]
        == json.loads((trained / "model.json").read_text())["model_id"]
    )


def test_a_pretrained_backbone_learns_only_after_its_frozen_blocks(
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lookalike.embed.registry import create_backbone

    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mobilenet"
    assert train(dataset, out, 1, "--freeze", "17", "--views", "1", model="mobilenet_v2") == 0
    assert len(list((tmp_path / "cache").rglob("mobilenet_v2-*.pt"))) == 1  # frozen maps kept
    backbone = create_backbone("mobilenet_v2")
    assert isinstance(backbone, torch.nn.Module)
    pretrained = backbone.state_dict()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    frozen = [n for n in pretrained if n.startswith("features.16.") and n.endswith("weight")]
    learnt = [n for n in pretrained if n.startswith("features.17.") and n.endswith("weight")]
    assert frozen and learnt
    assert all(torch.equal(state["net"][f"backbone.{n}"], pretrained[n]) for n in frozen)
    assert not any(torch.equal(state["net"][f"backbone.{n}"], pretrained[n]) for n in learnt)
    assert state["optimizer"]["state"]  # the optimiser's moments are kept for --resume
    meta = json.loads((out / "model.json").read_text())
    assert meta["dim"] == 1280 and meta["training"]["settings"]["frozen_blocks"] == 17

    # a second run reads the frozen blocks' output from the cache and learns the same
    again = tmp_path / "again"
    capsys.readouterr()
    assert train(dataset, again, 1, "--freeze", "17", "--views", "1", model="mobilenet_v2") == 0
    assert "read from the cache" in capsys.readouterr().out
    state_again = torch.load(again / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(t, state_again["net"][n]) for n, t in state["net"].items())


def test_a_second_run_into_the_same_directory_is_refused(
    trained: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(dataset, trained, 2) == 1
    assert "--resume" in capsys.readouterr().err


def test_resume_with_other_settings_is_refused(
    trained: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(dataset, trained, 3, "--resume", "--loss", "mse") == 1
    assert "cannot resume with other settings: loss" in capsys.readouterr().err


def test_the_default_models_name_trains_its_network(dataset: Path, tmp_path: Path) -> None:
    """``efficientnet_lite0_gem`` (the default model) is efficientnet_lite0 pooled by GeM,
    which is what every trained model is: the run trains that architecture."""
    out = tmp_path / "lite0"
    assert train(dataset, out, 0, "--no-whiten", model="efficientnet_lite0_gem") == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["architecture"] == "efficientnet_lite0"
    assert meta["pooling"]["name"] == "gem"
