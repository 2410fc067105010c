from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.config import Settings, load_settings
from lookalike.errors import LookalikeError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("INDEX", "MODEL", "BATCH_SIZE", "WORKERS", "EXECUTOR", "RAY_ADDRESS", "ACTORS"):
        monkeypatch.delenv(f"LOOKALIKE_{name}", raising=False)
    config = tmp_path / "config.toml"
    monkeypatch.setenv("LOOKALIKE_CONFIG", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return config


def test_defaults_then_file_then_environment_then_flags(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings() == Settings(index=str(tmp_path / "data" / "lookalike" / "index"))
    clean_environment.write_text(
        'model = "efficientnet_lite0"\nbatch_size = 8\nindex = "~/pics-index"\n'
    )
    from_file = load_settings()
    assert (from_file.model, from_file.batch_size) == ("efficientnet_lite0", 8)
    assert from_file.index == str(Path("~/pics-index").expanduser())
    monkeypatch.setenv("LOOKALIKE_BATCH_SIZE", "16")
    assert load_settings().batch_size == 16
    assert load_settings(batch_size=4, model=None).batch_size == 4
    assert load_settings(batch_size=4, model=None).model == "efficientnet_lite0"


def test_bad_config_is_a_clear_error(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment.write_text("model = [unclosed")
    with pytest.raises(LookalikeError, match="not valid TOML"):
        load_settings()
    clean_environment.write_text('colour = "blue"\n')
    with pytest.raises(LookalikeError, match=r"unknown setting.*colour"):
        load_settings()
    clean_environment.write_text("")
    monkeypatch.setenv("LOOKALIKE_WORKERS", "many")
    with pytest.raises(LookalikeError, match="bad setting value"):
        load_settings()


def test_executor_settings(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment.write_text('executor = "ray"\nray_address = "head:6379"\n')
    monkeypatch.setenv("LOOKALIKE_ACTORS", "3")
    settings = load_settings()
    assert (settings.executor, settings.ray_address, settings.actors) == ("ray", "head:6379", 3)
    assert load_settings(executor="local").executor == "local"
    with pytest.raises(LookalikeError, match="executor must be one of local, ray, got 'spark'"):
        load_settings(executor="spark")
    with pytest.raises(LookalikeError, match="actors must be 0"):
        load_settings(actors=-1)


def test_a_milvus_location_is_kept_as_given_from_file_environment_and_flag(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index is a directory (``~`` expanded) or a milvus:// URL, never made a path."""
    url = "milvus://db.example:19530/photos?index=IVF_FLAT&nlist=256"
    clean_environment.write_text(f'index = "{url}"\n')
    assert load_settings().index == url
    monkeypatch.setenv("LOOKALIKE_INDEX", "milvus://other:19530/photos")
    assert load_settings().index == "milvus://other:19530/photos"
    assert load_settings(index="~/idx").index == str(Path("~/idx").expanduser())
