"""The duplicates routes over a real collection with real copies (the Duplicates tab's API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from lookalike.present.web.service import ServerConfig

Serve = Callable[[ServerConfig], TestClient]


def test_groups_come_a_page_at_a_time_keeper_first(
    own_collection: tuple[Path, Path], serve: Serve
) -> None:
    root, index = own_collection
    with serve(ServerConfig(index)) as client:
        first = client.get("/api/duplicates", params={"limit": 1}).json()
        second = client.get("/api/duplicates", params={"limit": 1, "offset": 1}).json()
        assert (first["total"], first["copies"], len(first["groups"])) == (3, 6, 1)
        assert first["groups"][0]["key"] != second["groups"][0]["key"]
        group = first["groups"][0]
        assert Path(group["keep"]["path"]).name == "coffee.jpg" and group["reason"]
        assert {Path(d["path"]).name for d in group["duplicates"]} == {
            "coffee-q70.jpg",
            "coffee-half.jpg",
            "coffee-rot90.jpg",
        }
        assert client.get(group["keep"]["thumbnail_url"]).status_code == 200
        turned = client.get("/api/duplicates", params={"orientations": "true"}).json()
        transforms = {
            Path(d["path"]).name: d["transform"] for g in turned["groups"] for d in g["duplicates"]
        }
        assert transforms["coffee-rot90.jpg"] == "rot90" and transforms["coffee-q70.jpg"] is None
        # Under a folder the server may write to: by default, those the index holds images in.
        assert first["destination"] in {
            str(root / f / "lookalike-duplicates") for f in ("copies", "originals")
        }
        bad = client.get("/api/duplicates", params={"threshold": 3})
        assert bad.status_code == 422 and "error" in bad.json()


def test_a_verdict_and_a_move_change_the_next_scan(
    own_collection: tuple[Path, Path], serve: Serve, tmp_path: Path
) -> None:
    root, index = own_collection
    with serve(ServerConfig(index)) as client:
        groups = client.get("/api/duplicates").json()["groups"]
        chelsea = next(g for g in groups if g["keep"]["path"].endswith("chelsea.jpg"))
        ids = [chelsea["keep"]["id"]] + [d["id"] for d in chelsea["duplicates"]]
        assert client.post("/api/duplicates/not-duplicates", json={"ids": ids}).json() == {
            "recorded": 2
        }
        assert client.get("/api/duplicates").json()["total"] == 2

        rocket = next(g for g in groups if g["keep"]["path"].endswith("rocket.jpg"))
        flip = next(d for d in rocket["duplicates"] if d["path"].endswith("rocket-flip.jpg"))
        others = [rocket["keep"]["id"]] + [d["id"] for d in rocket["duplicates"] if d is not flip]
        destination = str(root / "originals" / "review")
        request = {"keep": flip["id"], "ids": others, "destination": destination}
        outside = client.post(
            "/api/duplicates/move", json={**request, "destination": str(tmp_path / "elsewhere")}
        )
        assert outside.status_code == 403
        keeper_too = client.post(
            "/api/duplicates/move", json={**request, "ids": [*others, flip["id"]]}
        )
        assert keeper_too.status_code == 422
        plan = client.post("/api/duplicates/move", json=request).json()
        assert plan["applied"] is False and plan["journal"] is None and len(plan["moves"]) == 2
        assert (root / "originals/rocket.jpg").is_file()  # a dry run moves nothing
        done = client.post("/api/duplicates/move", json={**request, "apply": True}).json()
        assert done["applied"] and Path(done["journal"]).is_file()
        assert (root / "originals/review/originals/rocket.jpg").is_file()
        assert not (root / "originals/rocket.jpg").exists()
        assert (root / "copies/rocket-flip.jpg").is_file()  # the keeper chosen by hand stays
        after = client.get("/api/duplicates").json()
        assert all(
            "rocket-q70" not in g["keep"]["path"] or g["keep"]["path"].startswith(destination)
            for g in after["groups"]
        )


def test_a_token_guards_the_move(own_collection: tuple[Path, Path], serve: Serve) -> None:
    root, index = own_collection
    with serve(ServerConfig(index, token="s3cret")) as client:
        request = {"keep": 1, "ids": [2], "destination": str(root / "review"), "apply": True}
        assert client.post("/api/duplicates/move", json=request).status_code == 401
        assert client.get("/api/duplicates").status_code == 401
        authorised = client.get("/api/duplicates", headers={"Authorization": "Bearer s3cret"})
        assert authorised.status_code == 200
