"""Settings from one source, in order: defaults, then the config file, then environment, then flags.

The file is TOML at ``$LOOKALIKE_CONFIG`` or ``~/.config/lookalike/config.toml`` with keys of
the same names as :class:`Settings` fields (``index``, ``model``, ``batch_size``, ``workers``,
``executor``, ``ray_address``, ``actors``).
Environment variables are ``LOOKALIKE_<FIELD>`` (``LOOKALIKE_INDEX``, ``LOOKALIKE_MODEL``...).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import LookalikeError


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def cache_home() -> Path:
    """Per-user cache for derived files (exported ONNX models, demo images, thumbnails)."""
    base = os.environ.get("LOOKALIKE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "lookalike" if base else Path.home() / ".cache" / "lookalike"


def torch_home() -> Path:
    """Where PyTorch keeps its hub, found as ``torch.hub.get_dir()`` finds it
    (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``)."""
    home = os.environ.get("TORCH_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "torch"
    )
    return Path(home).expanduser()


def runtime_override() -> str | None:
    """``$LOOKALIKE_RUNTIME``: the runtime every model runs with (onnx, onnx-int8, torch)."""
    return os.environ.get("LOOKALIKE_RUNTIME") or None


def weights_override() -> str | None:
    """``$LOOKALIKE_WEIGHTS``: a weights file that replaces a model's own (as ``--weights``)."""
    return os.environ.get("LOOKALIKE_WEIGHTS") or None


def config_file() -> Path:
    explicit = os.environ.get("LOOKALIKE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "lookalike" / "config.toml"


# The model of a new index: EfficientNet-Lite0 with GeM pooling beat mobilenet_v2 on both
# public sets and on copy detection (README "Measuring search quality"); mobilenet_v2 is
# faster and groups more edited copies as duplicates (README "Finding duplicates").
DEFAULT_MODEL = "efficientnet_lite0_gem"
EXECUTORS = ("local", "ray")  # where embedding runs (lookalike.pipeline.runner.open_runner)


@dataclass(frozen=True)
class Settings:
    """Everything a run can be configured with."""

    # a directory (the embedded store) or milvus://HOST:PORT/COLLECTION (lookalike.store.milvus)
    index: str = dataclasses.field(
        default_factory=lambda: str(_data_home() / "lookalike" / "index")
    )
    model: str = DEFAULT_MODEL
    batch_size: int = 32
    workers: int = 0  # decode threads; 0 picks from the machine's cores
    executor: str = "local"  # where embedding runs: "local" (threads here) or "ray"
    ray_address: str = ""  # the Ray cluster's HOST:PORT; "" starts a Ray for the run
    actors: int = 0  # Ray actors, one model each; 0: one per CPU of the cluster


def load_settings(**flags: Any) -> Settings:
    """Resolve settings; ``flags`` given as None are treated as not given."""
    values: dict[str, Any] = {}
    path = config_file()
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text()))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise LookalikeError(f"config file {path} is not valid TOML: {exc}") from exc
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for name in fields:
        env = os.environ.get(f"LOOKALIKE_{name.upper()}")
        if env:
            values[name] = env
    values.update({k: v for k, v in flags.items() if v is not None})
    unknown = set(values) - set(fields)
    if unknown:
        raise LookalikeError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    try:
        settings = Settings(
            index=index_location(str(values.get("index", Settings().index))),
            model=str(values.get("model", Settings.model)),
            batch_size=int(values.get("batch_size", Settings.batch_size)),
            workers=int(values.get("workers", Settings.workers)),
            executor=str(values.get("executor", Settings.executor)),
            ray_address=str(values.get("ray_address", Settings.ray_address)),
            actors=int(values.get("actors", Settings.actors)),
        )
    except ValueError as exc:
        raise LookalikeError(f"bad setting value: {exc}") from exc
    if settings.batch_size < 1:
        raise LookalikeError(f"batch size must be at least 1, got {settings.batch_size}")
    if settings.workers < 0:
        raise LookalikeError(f"workers must be 0 (by cores) or more, got {settings.workers}")
    if settings.executor not in EXECUTORS:
        raise LookalikeError(
            f"executor must be one of {', '.join(EXECUTORS)}, got {settings.executor!r}"
        )
    if settings.actors < 0:
        raise LookalikeError(f"actors must be 0 (one per CPU) or more, got {settings.actors}")
    return settings


def index_location(text: str) -> str:
    """An index location as given: a URL (``milvus://...``) as it is, a directory with ``~``
    expanded."""
    return text if "://" in text else str(Path(text).expanduser())


TOKEN_ENV = "LOOKALIKE_TOKEN"


def token_from_environment() -> str | None:
    """The web server's token from ``$LOOKALIKE_TOKEN`` (kept out of ``ps``, unlike a flag)."""
    return os.environ.get(TOKEN_ENV) or None


def debug_from_environment() -> bool:
    """``LOOKALIKE_DEBUG=1``: let unexpected errors show their traceback (for bug reports)."""
    return os.environ.get("LOOKALIKE_DEBUG", "") not in ("", "0")
