"""A search with the model's ONNX file cached runs without PyTorch, from the CLI and the web
API, and finds what a search in this (PyTorch-loaded) process finds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from lookalike import Index

NO_TORCH = 3  # the probes' exit code when PyTorch was imported


def probe(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; it exits NO_TORCH if 'torch' got imported."""
    guard = f"\nsys.exit({NO_TORCH} if 'torch' in sys.modules else 0)\n"
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + code + guard],
        capture_output=True,
        text=True,
        timeout=120,
    )


def expected_hits(index_dir: Path, query: Path) -> list[tuple[str, float]]:
    """The search done here, which also makes sure the index's ONNX model is cached."""
    with Index.open(index_dir) as index:
        return [(hit.path, hit.score) for hit in index.search(query, k=3)]


def same_hits(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    return [p for p, _ in got] == [p for p, _ in expected] and all(
        abs(a - b) < 1e-4 for (_, a), (_, b) in zip(got, expected, strict=True)
    )


def test_cli_search_does_not_import_pytorch(built_index: Path, photo_library: Path) -> None:
    query = photo_library / "chelsea.jpg"
    expected = expected_hits(built_index, query)
    args = ["search", "--index", str(built_index), "--json", "-k", "3", str(query)]
    result = probe(f"from lookalike.present.cli import main\nmain({args!r})")
    assert result.returncode != NO_TORCH, "the search imported PyTorch"
    assert result.returncode == 0, result.stderr
    hits = [(r["path"], r["score"]) for r in json.loads(result.stdout)["results"]]
    assert same_hits(hits, expected), (hits, expected)
    assert hits[0][0] == str(query)


def test_web_search_does_not_import_pytorch(
    built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"  # the server writes thumbnails beside the index
    shutil.copytree(built_index, index_dir)
    query = photo_library / "coffee.jpg"
    expected = expected_hits(index_dir, query)
    code = f"""
import json
from pathlib import Path
from fastapi.testclient import TestClient
from lookalike.present.web.app import create_app
from lookalike.present.web.service import ServerConfig
app = create_app(ServerConfig(Path({str(index_dir)!r})))
with TestClient(app, base_url="http://127.0.0.1") as client:
    image = ("q.jpg", Path({str(query)!r}).read_bytes(), "image/jpeg")
    response = client.post("/api/search", files={{"image": image}}, params={{"k": 3}})
    assert response.status_code == 200, response.text
    print(json.dumps(response.json()))
"""
    result = probe(code)
    assert result.returncode != NO_TORCH, "the web search imported PyTorch"
    assert result.returncode == 0, result.stderr
    hits = [(r["path"], r["score"]) for r in json.loads(result.stdout)["results"]]
    assert same_hits(hits, expected), (hits, expected)
