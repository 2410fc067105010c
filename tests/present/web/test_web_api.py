"""The REST API over a real index of real photo_library, through an HTTP client."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.evaluate.edits import apply_edit
from lookalike.index import Index
from lookalike.present.web.service import ServerConfig
from lookalike.store.lock import WriterLock
from lookalike.train import adapt

Serve = Callable[[ServerConfig], TestClient]  # the ``serve`` fixture


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def edited(photo_library: Path, name: str, edit: str) -> bytes:
    with Image.open(photo_library / f"{name}.jpg") as image:
        return jpeg_bytes(apply_edit(edit, image))


def upload(client: TestClient, data: bytes, **params: object) -> dict[str, Any]:
    response = client.post(
        "/api/search", files={"image": ("q.jpg", data, "image/jpeg")}, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def id_of(client: TestClient, photo_library: Path, name: str) -> int:
    items = client.get("/api/images", params={"limit": 500}).json()["items"]
    return next(i["id"] for i in items if i["path"] == str(photo_library / f"{name}.jpg"))


def finished(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    """The job once it has stopped running, polled as the page polls it."""
    for _ in range(1200):
        job = client.get(f"/api/jobs/{job['id']}").json()
        if job["status"] not in ("running", "cancelling"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still running: {job}")


def wait_ready(client: TestClient) -> None:
    for _ in range(300):
        if client.get("/health").json()["status"] == "ready":
            return
        time.sleep(0.1)
    raise AssertionError("model did not load")


def test_health_and_stats_describe_the_index(client: TestClient, served_index: Path) -> None:
    wait_ready(client)
    health = client.get("/health").json()
    assert health["images"] == 8
    assert health["features"]["text_search"] is True  # the model stores ImageNet classes
    assert health["features"]["duplicates"] is True
    stats = client.get("/api/stats").json()["index"]
    assert stats["directory"] == str(served_index)
    assert (
        stats["model"] == "efficientnet_lite0_gem" and stats["dim"] == 1280 and stats["images"] == 8
    )


def test_openapi_schema_lists_the_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/api/search",
        "/api/search/text",
        "/api/images/{image_id}/similar",
        "/api/images/{image_id}/thumbnail",
        "/api/images/{image_id}/original",
        "/api/images",
        "/api/stats",
        "/api/jobs",
        "/health",
    } <= set(schema["paths"])
    assert "text search" in schema["info"]["description"].lower()


@pytest.mark.parametrize(
    ("name", "edit"), [("chelsea", "centre_crop"), ("astronaut", "flip"), ("coins", "jpeg_15")]
)
def test_upload_finds_the_original_of_an_edited_copy(
    client: TestClient, photo_library: Path, name: str, edit: str
) -> None:
    out = upload(client, edited(photo_library, name, edit), k=3)
    assert len(out["results"]) == 3
    first = out["results"][0]
    assert first["path"] == str(photo_library / f"{name}.jpg")
    assert set(first) == {"id", "path", "score", "width", "height", "thumbnail_url", "original_url"}
    assert first["width"] > 0 and first["height"] > 0
    assert first["thumbnail_url"] == f"/api/images/{first['id']}/thumbnail"
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True) and 0.5 < scores[0] <= 1.0001


def test_search_by_id_uses_the_indexed_image(client: TestClient, photo_library: Path) -> None:
    image_id = id_of(client, photo_library, "coffee")
    with_self = client.get(f"/api/images/{image_id}/similar", params={"k": 4}).json()["results"]
    assert with_self[0]["id"] == image_id and with_self[0]["score"] == pytest.approx(1.0, abs=1e-4)
    without = client.get(
        f"/api/images/{image_id}/similar", params={"k": 4, "exclude_self": True}
    ).json()["results"]
    assert [r["id"] for r in without] == [r["id"] for r in with_self[1:]] + [without[-1]["id"]]
    assert image_id not in {r["id"] for r in without}


def test_region_search_finds_the_image_the_region_is_cut_from(
    client: TestClient, photo_library: Path
) -> None:
    # The cat's face, in the middle of chelsea.jpg (451x300), searched by id and by upload.
    box = {"x": 120, "y": 40, "w": 220, "h": 220}
    chelsea = id_of(client, photo_library, "chelsea")
    by_id = client.get(f"/api/images/{chelsea}/similar", params={"k": 2, **box}).json()
    assert by_id["results"][0]["id"] == chelsea
    assert by_id["results"][0]["score"] < 0.999  # a crop, not the whole image's vector
    by_upload = upload(client, (photo_library / "chelsea.jpg").read_bytes(), k=2, **box)
    assert by_upload["results"][0]["id"] == chelsea


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ({"x": 400, "y": 0, "w": 100, "h": 100}, "not inside"),
        ({"x": 0, "y": 0, "w": 4, "h": 4}, "too small"),
        ({"x": 0, "y": 0, "w": 100}, "needs all of"),
    ],
)
def test_bad_regions_are_refused(
    client: TestClient, photo_library: Path, box: dict[str, int], message: str
) -> None:
    chelsea = id_of(client, photo_library, "chelsea")
    response = client.get(f"/api/images/{chelsea}/similar", params=box)
    assert response.status_code in (400, 422)
    assert message in response.json()["error"]


def test_filters_restrict_the_results(client: TestClient, photo_library: Path) -> None:
    data = edited(photo_library, "chelsea", "flip")
    wide = upload(client, data, k=8, min_width=600)["results"]
    assert wide and all(r["width"] >= 600 for r in wide)
    sizes = {p.stem: Image.open(p).size for p in photo_library.glob("*.jpg")}
    assert {Path(r["path"]).stem for r in wide} == {n for n, (w, _) in sizes.items() if w >= 600}
    tall = upload(client, data, k=8, min_width=500, min_height=500)["results"]
    assert {Path(r["path"]).stem for r in tall} == {
        n for n, (w, h) in sizes.items() if w >= 500 and h >= 500
    }
    assert (
        upload(client, data, k=5, folder=str(photo_library.parent / "elsewhere"))["results"] == []
    )
    assert len(upload(client, data, k=5, folder=str(photo_library))["results"]) == 5
    # No demo photo has an EXIF capture date, so any date range excludes them all.
    assert upload(client, data, k=5, taken_after="2000-01-01")["results"] == []


def test_k_is_bounded(client: TestClient, photo_library: Path) -> None:
    chelsea = id_of(client, photo_library, "chelsea")
    assert client.get(f"/api/images/{chelsea}/similar", params={"k": 0}).status_code == 422
    assert client.get(f"/api/images/{chelsea}/similar", params={"k": 1000}).status_code == 422
    out = client.get(f"/api/images/{chelsea}/similar", params={"k": 50}).json()
    assert len(out["results"]) == 8  # all there are


def test_collection_pages_through_every_image(client: TestClient, photo_library: Path) -> None:
    first = client.get("/api/images", params={"limit": 5}).json()
    rest = client.get("/api/images", params={"offset": 5, "limit": 5}).json()
    assert first["total"] == rest["total"] == 8
    paths = [i["path"] for i in first["items"] + rest["items"]]
    assert sorted(paths) == sorted(str(p) for p in photo_library.glob("*.jpg"))
    image = client.get(f"/api/images/{first['items'][0]['id']}").json()
    assert image == first["items"][0]


def test_original_is_the_indexed_file(client: TestClient, photo_library: Path) -> None:
    coins = id_of(client, photo_library, "coins")
    response = client.get(f"/api/images/{coins}/original")
    assert response.status_code == 200
    assert response.content == (photo_library / "coins.jpg").read_bytes()
    assert response.headers["content-type"] == "image/jpeg"


def test_thumbnails_are_cached_beside_the_index_and_remade_when_the_source_changes(
    index_copy: Path, tmp_path: Path, serve: Serve
) -> None:
    photo = tmp_path / "extra" / "grass.jpg"
    photo.parent.mkdir()
    Image.new("RGB", (900, 300), (30, 160, 40)).save(photo)
    with Index.open(index_copy) as index:
        index.add([photo.parent], workers=0)
    with serve(ServerConfig(index_copy)) as client:
        image_id = id_of(client, photo.parent, "grass")
        response = client.get(f"/api/images/{image_id}/thumbnail", params={"size": 128})
        assert response.status_code == 200
        cached = index_copy / "thumbnails" / f"{image_id}-128.jpg"
        assert cached.read_bytes() == response.content
        with Image.open(cached) as thumb:
            assert thumb.size == (128, 43)
        made_at = cached.stat().st_ino
        client.get(f"/api/images/{image_id}/thumbnail", params={"size": 128})
        assert cached.stat().st_ino == made_at  # served from the cache, not rewritten

        Image.new("RGB", (300, 900), (200, 30, 30)).save(photo)
        os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
        client.get(f"/api/images/{image_id}/thumbnail", params={"size": 128})
        with Image.open(cached) as thumb:
            assert thumb.size == (43, 128)
        assert (
            client.get(f"/api/images/{image_id}/thumbnail", params={"size": 100}).status_code == 422
        )


def test_changes_by_another_writer_are_seen_without_a_restart(
    index_copy: Path, tmp_path: Path, photo_library: Path, serve: Serve
) -> None:
    new_folder = tmp_path / "new"
    new_folder.mkdir()
    with Image.open(photo_library / "rocket.jpg") as rocket:
        apply_edit("greyscale", rocket).save(new_folder / "grey-rocket.jpg")
    with serve(ServerConfig(index_copy)) as client:
        query = (new_folder / "grey-rocket.jpg").read_bytes()
        assert upload(client, query, k=1)["results"][0]["path"].endswith("rocket.jpg")
        with Index.open(index_copy) as writer:  # its own connection, as `lookalike index` has
            writer.add([new_folder], workers=0)
        out = upload(client, query, k=1)
        assert out["results"][0]["path"] == str(new_folder / "grey-rocket.jpg")
        assert client.get("/health").json()["images"] == 9


def test_add_job_indexes_in_the_background_with_progress(
    index_copy: Path, tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    for i, colour in enumerate([(250, 200, 10), (10, 20, 240)]):
        Image.new("RGB", (200, 150), colour).save(folder / f"plain-{i}.png")
    (folder / "notes.jpg").write_bytes(b"not an image")
    with serve(ServerConfig(index_copy, allowed_roots=(str(tmp_path),))) as client:
        started = client.post("/api/jobs", json={"paths": [str(folder)]})
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "running"
        job = finished(client, started.json())
        assert job["status"] == "done", job
        assert (job["added"], job["skipped"], job["done"], job["total"]) == (2, 1, 3, 3)
        assert job["phase"] is None  # finished: nothing is being counted
        assert client.get("/api/stats").json()["index"]["images"] == 10
        assert client.get("/api/jobs/nope").status_code == 404
        assert job["adapted"] is None  # too few images to adapt to
        monkeypatch.setattr(adapt, "ADAPT_FROM", 10)
        again = finished(client, client.post("/api/jobs", json={"paths": [str(folder)]}).json())
        assert again["status"] == "done" and again["added"] == 0 and again["adapted"] == 10


def test_add_job_is_refused_while_another_writer_holds_the_index(
    index_copy: Path, serve: Serve
) -> None:
    config = ServerConfig(index_copy, allowed_roots=(str(index_copy),))
    with serve(config) as client, WriterLock(index_copy):
        response = client.post("/api/jobs", json={"paths": [str(index_copy)]})
        assert response.status_code == 409
        assert "locked" in response.json()["error"]


@pytest.mark.parametrize(
    ("paths", "message"),
    [([], "at least one"), (["relative/photos"], "absolute"), (["{library}/gone"], "no such")],
)
def test_add_job_checks_its_paths(
    client: TestClient, photo_library: Path, paths: list[str], message: str
) -> None:
    response = client.post(
        "/api/jobs", json={"paths": [p.format(library=photo_library) for p in paths]}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_job_adds_only_under_the_folders_already_indexed(tmp_path: Path, serve: Serve) -> None:
    photos = tmp_path / "photos"
    for year, colour in [("2023", (200, 40, 40)), ("2024", (40, 40, 200))]:
        (photos / year).mkdir(parents=True)
        Image.new("RGB", (120, 90), colour).save(photos / year / "a.png")
    with Index.create(tmp_path / "index") as index:
        index.add([photos], workers=0)
    # The allowed roots are the fewest folders that hold the indexed images: 2023 and 2024.
    (photos / "2023" / "june").mkdir()
    Image.new("RGB", (120, 90), (40, 200, 40)).save(photos / "2023" / "june" / "b.png")
    (photos / "2025").mkdir()
    Image.new("RGB", (120, 90), (200, 200, 40)).save(photos / "2025" / "c.png")
    with serve(ServerConfig(tmp_path / "index")) as client:
        for outside in [
            photos / "2025",
            photos,
            photos / "2023" / ".." / "2025",
            "/etc",
            "/no/such",
        ]:
            response = client.post("/api/jobs", json={"paths": [str(outside)]})
            assert response.status_code == 403, (outside, response.text)
            error = response.json()["error"]
            assert "outside the folders" in error and "--allow-root" in error
            assert str(photos / "2023") in error
        started = client.post("/api/jobs", json={"paths": [str(photos / "2023" / "june")]})
        assert started.status_code == 202, started.text
        assert finished(client, started.json())["added"] == 1
        assert client.get("/health").json()["images"] == 3  # 2025 was never added
    with serve(ServerConfig(tmp_path / "index", allowed_roots=(str(photos),))) as client:
        started = client.post("/api/jobs", json={"paths": [str(photos / "2025")]})
        assert started.status_code == 202, started.text
        assert finished(client, started.json())["added"] == 1


def test_a_running_job_is_cancelled_at_a_batch_and_keeps_what_it_committed(
    index_copy: Path, tmp_path: Path, serve: Serve
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(256):  # 8 batches of 32
        Image.new("RGB", (48, 48), (i, 255 - i, (7 * i) % 256)).save(folder / f"{i:03}.png")
    with serve(ServerConfig(index_copy, allowed_roots=(str(tmp_path),))) as client:
        job = client.post("/api/jobs", json={"paths": [str(folder)]}).json()
        deadline = time.monotonic() + 120
        while job["done"] < 32:  # until the first batch is committed
            assert job["status"] == "running" and time.monotonic() < deadline, job
            time.sleep(0.01)
            job = client.get(f"/api/jobs/{job['id']}").json()
        cancelling = client.delete(f"/api/jobs/{job['id']}")
        assert cancelling.status_code == 202
        assert cancelling.json()["status"] in ("cancelling", "cancelled")
        job = finished(client, job)
        assert job["status"] == "cancelled" and job["error"] is None
        assert 32 <= job["done"] < job["total"] == 256
        kept = job["done"]
        assert client.get("/health").json()["images"] == 8 + kept
        with WriterLock(index_copy):  # released: another writer may take it
            pass
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 202  # asking twice is fine

        again = finished(client, client.post("/api/jobs", json={"paths": [str(folder)]}).json())
        assert (again["status"], again["added"], again["unchanged"]) == ("done", 256 - kept, kept)
        refused = client.delete(f"/api/jobs/{again['id']}")
        assert refused.status_code == 409 and "already finished" in refused.json()["error"]
        assert client.delete("/api/jobs/nope").status_code == 404


def test_a_file_name_that_is_not_utf8_is_listed_searched_and_served(
    photos: Path, tmp_path: Path, serve: Serve
) -> None:
    odd = os.fsdecode(os.fsencode(photos) + b"/caf\xe9.jpg")  # Latin-1 é
    os.rename(photos / "coffee.jpg", odd)
    with Index.create(tmp_path / "idx") as index:
        index.add([photos])
    with serve(ServerConfig(tmp_path / "idx")) as client:
        wait_ready(client)
        listed = client.get("/api/images", params={"limit": 20})
        assert listed.status_code == 200
        (item,) = [
            i for i in listed.json()["items"] if i["path"].endswith(".jpg") and "caf" in i["path"]
        ]
        assert os.fsencode(item["path"]) == os.fsencode(odd)  # the same bytes, via \udce9
        similar = client.get(f"/api/images/{item['id']}/similar", params={"k": 1}).json()
        assert similar["results"][0]["path"] == item["path"]
        original = client.get(item["original_url"])
        assert original.status_code == 200 and original.content == Path(odd).read_bytes()
