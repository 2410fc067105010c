"""Clients on the app over the session's real index (``built_index`` in tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.present.web.app import create_app
from lookalike.present.web.service import ServerConfig


@pytest.fixture(scope="session")
def served_index(built_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's index for the read-only servers here: they write thumbnails
    beside it, and the session's index itself must stay as built."""
    directory = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(built_index, directory)
    return directory


@pytest.fixture
def index_copy(built_index: Path, tmp_path: Path) -> Path:
    """A private copy of the index (catalogue and vectors) that a test may change."""
    directory = tmp_path / "index"
    shutil.copytree(built_index, directory, ignore=shutil.ignore_patterns("thumbnails"))
    return directory


# The Host a browser sends to the default server. TestClient's own, "testserver", is refused
# like any name the server was not started for.
BASE_URL = "http://127.0.0.1"

Serve = Callable[[ServerConfig], TestClient]


@pytest.fixture(scope="session")
def serve() -> Serve:
    """A client on a new app with this configuration, addressed as a browser would; use it
    in a ``with`` block, which runs the app's start-up (the model loads) and shut-down."""

    def client_for(config: ServerConfig) -> TestClient:
        return TestClient(create_app(config), base_url=BASE_URL)

    return client_for


@pytest.fixture(scope="session")
def client(served_index: Path, serve: Serve) -> Iterator[TestClient]:
    """An HTTP client on the app over the served index (read-only use)."""
    with serve(ServerConfig(served_index)) as test_client:
        yield test_client
