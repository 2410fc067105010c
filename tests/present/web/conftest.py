"""A real index of real photos (scikit-image's, via the demo), built once per test session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.demo import write_photos
from lookalike.index import Index
from lookalike.present.web.app import ServerConfig, create_app

PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "moon", "brick")


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos") / "photos"
    write_photos(folder, PHOTO_NAMES)
    return folder


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """The index directory; tests that write to an index use ``index_copy``."""
    directory = tmp_path_factory.mktemp("index") / "index"
    with Index.create(directory) as index:
        report = index.add([photos], workers=0)
    assert report.added == len(PHOTO_NAMES)
    return directory


@pytest.fixture
def index_copy(built_index: Path, tmp_path: Path) -> Path:
    """A private copy of the index (catalogue and vectors) that a test may change."""
    directory = tmp_path / "index"
    shutil.copytree(built_index, directory, ignore=shutil.ignore_patterns("thumbnails"))
    return directory


@pytest.fixture(scope="session")
def client(built_index: Path) -> Iterator[TestClient]:
    """An HTTP client on the app over the shared index (read-only use)."""
    with TestClient(create_app(ServerConfig(built_index))) as test_client:
        yield test_client
