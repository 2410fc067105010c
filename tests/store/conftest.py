"""Fixtures of the Milvus store's tests: one server a session (milvus_harness.py)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from milvus_harness import MilvusServer, namespace_problem


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """The session's Milvus server, started on first use and removed with its namespace."""
    pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
    pytest.importorskip("milvus", reason="the Milvus test server (dev extra) is not installed")
    namespace = f"lookalike-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    problem = namespace_problem(namespace)
    if problem:
        pytest.skip(f"no network namespace for the Milvus server: {problem}")
    server = MilvusServer(namespace, tmp_path_factory.mktemp("milvus"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        subprocess.run(["ip", "netns", "delete", namespace], check=False)


@pytest.fixture
def collection(request: pytest.FixtureRequest) -> str:
    """A collection name of this test's own."""
    return f"t_{request.node.name[:40].replace('-', '_').replace('[', '_').replace(']', '')}"
