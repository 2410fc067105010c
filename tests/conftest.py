"""Shared fixtures: real photographs (scikit-image's bundled ones) and indexes built from them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import Index
from lookalike.demo import write_photos

# A handful of distinct real photos keeps the suite fast; the demo has 16.
PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "retina", "moon")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One derived-file cache for the session (exported ONNX models are costly to make), kept
    out of the user's own ~/.cache; subprocesses inherit it through the environment."""
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("LOOKALIKE_CACHE")
    os.environ["LOOKALIKE_CACHE"] = str(cache)
    yield cache
    if previous is None:
        del os.environ["LOOKALIKE_CACHE"]
    else:
        os.environ["LOOKALIKE_CACHE"] = previous


@pytest.fixture(scope="session")
def photo_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only folder of real JPEG photographs; copy it before changing anything."""
    folder = tmp_path_factory.mktemp("library") / "photos"
    write_photos(folder, PHOTO_NAMES)
    return folder


@pytest.fixture
def photos(photo_library: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the photo folder."""
    folder = tmp_path / "photos"
    shutil.copytree(photo_library, folder)
    return folder


@pytest.fixture(scope="session")
def built_index(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the photo library, built once per session; tests must not write to it."""
    directory = tmp_path_factory.mktemp("built") / "index"
    with Index.create(directory) as index:
        index.add([photo_library])
    return directory


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `lookalike` command in a subprocess, with no user config or index."""

    def run(
        *args: str, stdin: bytes | str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            LOOKALIKE_CONFIG=str(tmp_path / "no-config.toml"),
        )
        env.pop("LOOKALIKE_INDEX", None)
        result = subprocess.run(
            [sys.executable, "-m", "lookalike.present.cli", *args],
            input=stdin.decode("latin-1") if isinstance(stdin, bytes) else stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"lookalike {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder any user may enter (tmp_path is private to root when tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="lookalike-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def as_unprivileged() -> Callable[[Callable[[], object]], tuple[str, str]]:
    """Run a function in a forked child without root's power to read everything.

    Returns ("ok", repr(result)) or ("raised", "<ExceptionType>: <message>"). Permission tests
    need this because CI runs as root, which reads any file whatever its mode.
    """

    def run(fn: Callable[[], object]) -> tuple[str, str]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop to 'nobody', run, report, exit without cleanup
            os.close(read_end)
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                outcome = ("ok", repr(fn()))
            except BaseException as exc:
                outcome = ("raised", f"{type(exc).__name__}: {exc}")
            os.write(write_end, json.dumps(outcome).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        os.waitpid(pid, 0)
        kind, text = json.loads(payload)
        return kind, text

    return run


# A real photo collection with real copies in it (lookalike dupes, the Duplicates tab).

# (original, copy file name, how the copy was made)
COPIES = (
    ("coffee", "coffee-q70.jpg", "reencode"),
    ("coffee", "coffee-half.jpg", "half"),
    ("coffee", "coffee-rot90.jpg", "rot90"),
    ("rocket", "rocket-q70.jpg", "reencode"),
    ("rocket", "rocket-flip.jpg", "flip"),
    ("chelsea", "chelsea-half.jpg", "half"),
)


def write_copies(originals: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, copy, how in COPIES:
        image = Image.open(originals / f"{name}.jpg").convert("RGB")
        if how == "half":
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        elif how == "rot90":
            image = image.transpose(Image.Transpose.ROTATE_90)
        elif how == "flip":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.save(folder / copy, quality=70 if how == "reencode" else 90)


def make_collection(photo_library: Path, root: Path) -> Path:
    """``root``/originals (the session's photos) and ``root``/copies/<copies of three>."""
    shutil.copytree(photo_library, root / "originals")
    write_copies(root / "originals", root / "copies")
    return root


@pytest.fixture(scope="session")
def collection(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: eight real photos and six copies of three of them."""
    return make_collection(photo_library, tmp_path_factory.mktemp("dupes") / "collection")


@pytest.fixture(scope="session")
def collection_index(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of ``collection``, built once; tests must not write to it."""
    directory = tmp_path_factory.mktemp("dupes-index") / "index"
    with Index.create(directory) as index:
        index.add([collection])
    return directory


@pytest.fixture
def own_collection(photo_library: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a private collection, its own index) for tests that move files or write verdicts."""
    root = make_collection(photo_library, tmp_path / "collection")
    with Index.create(tmp_path / "index") as index:
        index.add([root])
    return root, tmp_path / "index"


@pytest.fixture
def styled_vectors() -> Callable[..., tuple[np.ndarray, list[str]]]:
    """``make(seed, labels_n=6, per_label=8, styles=3.0)``: float32 vectors of labels apart in
    16 dims, each drawn in one of four strong "styles" that every label shares (as icon themes
    are), so that the cosine sees the style more than the label; labels "{seed}-{n}", other
    labels for another seed, the same styles."""

    def make(
        seed: int, labels_n: int = 6, per_label: int = 8, styles: float = 3.0
    ) -> tuple[np.ndarray, list[str]]:
        look = np.random.default_rng(99).normal(0, styles, (4, 16))
        rng = np.random.default_rng(seed)
        labels = np.repeat(np.arange(labels_n), per_label)
        x = rng.normal(0, 1, (labels_n, 16))[labels] + look[rng.integers(0, 4, len(labels))]
        x += rng.normal(0, 0.2, x.shape) + 2.0
        return x.astype(np.float32), [f"{seed}-{label}" for label in labels]

    return make
