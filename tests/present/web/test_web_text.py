"""The REST text route over the session's index: found first, what matched, filters, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from lookalike import Index
from lookalike.present.web.service import ServerConfig

Serve = Callable[[ServerConfig], TestClient]  # the ``serve`` fixture


def test_words_find_the_photo_and_say_what_they_matched(client: TestClient) -> None:
    out = client.get("/api/search/text", params={"q": "a red espresso", "k": 3}).json()
    assert out["kind"] == "classes" and out["query"] == "a red espresso" and out["k"] == 3
    assert Path(out["results"][0]["path"]).name == "coffee.jpg"
    assert out["results"][0]["thumbnail_url"].endswith("/thumbnail")
    assert [m["name"] for m in out["matched"]] == ["espresso"] and out["not_understood"] == ["red"]


def test_filters_apply_and_bad_requests_are_json(client: TestClient, served_index: Path) -> None:
    with Index.open(served_index) as index:
        small = [r for r in index.records() if r.width and r.width < 500]
    filtered = client.get("/api/search/text", params={"q": "cat", "min_width": 500}).json()
    assert {r["id"] for r in filtered["results"]}.isdisjoint({r.id for r in small})
    assert client.get("/api/search/text", params={"q": ""}).status_code == 422
    assert client.get("/api/search/text").json()["error"]


def test_an_index_that_cannot_search_by_words_says_so(
    photo_library: Path, tmp_path: Path, serve: Serve
) -> None:
    with Index.create(tmp_path / "index", model="seed_cnn") as index:
        index.add([photo_library / "moon.jpg"])
    with serve(ServerConfig(tmp_path / "index")) as client:
        assert client.get("/health").json()["features"]["text_search"] is False
        response = client.get("/api/search/text", params={"q": "moon"})
        assert response.status_code == 400 and "cannot search by words" in response.json()["error"]
