"""Safety: token, loopback, upload limits, non-images, paths that are not indexed files, CORS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.index import Index
from lookalike.present.cli import main
from lookalike.present.web.app import create_app
from lookalike.present.web.cli import is_loopback
from lookalike.present.web.service import ServerConfig

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(served_index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServerConfig(served_index, token=TOKEN))) as client:
        yield client


@pytest.mark.parametrize(
    "url", ["/", "/health", "/api/stats", "/api/images", "/static/app.js", "/docs"]
)
def test_every_request_needs_the_token(guarded: TestClient, url: str) -> None:
    guarded.cookies.clear()
    response = guarded.get(url)
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert guarded.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get(url, params={"token": TOKEN[:-1]}).status_code == 401


def test_token_by_header_query_or_cookie(guarded: TestClient) -> None:
    guarded.cookies.clear()
    assert (
        guarded.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    first_visit = guarded.get("/", params={"token": TOKEN})
    assert first_visit.status_code == 200
    cookie = first_visit.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert guarded.get("/api/stats").status_code == 200  # the cookie now carries it
    guarded.cookies.clear()
    assert guarded.get("/api/stats").status_code == 401


def test_a_non_loopback_address_needs_a_token(
    served_index: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOKALIKE_TOKEN", raising=False)
    assert main(["serve", "--index", str(served_index), "--host", "0.0.0.0"]) == 1
    assert "needs a token" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")


def test_serve_without_an_index_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--index", str(tmp_path / "none")]) == 1
    assert "no index at" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_limit(served_index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServerConfig(served_index, max_upload_bytes=50_000))) as client:
        yield client


def test_uploads_over_the_limit_are_refused(small_limit: TestClient, photo_library: Path) -> None:
    big = (photo_library / "astronaut.jpg").read_bytes()
    assert len(big) > 50_000
    response = small_limit.post("/api/search", files={"image": ("a.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = small_limit.post(
        "/api/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert streamed.status_code == 413
    small = (photo_library / "coins.jpg").read_bytes()
    assert len(small) < 50_000
    ok = small_limit.post("/api/search", files={"image": ("c.jpg", small, "image/jpeg")})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.4 definitely not a picture", "not an image"),
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, ""),  # a truncated JPEG
    ],
)
def test_non_images_are_a_4xx_json_error(client: TestClient, data: bytes, message: str) -> None:
    response = client.post("/api/search", files={"image": ("x.jpg", data, "image/jpeg")})
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]


def test_missing_upload_field_is_a_422(client: TestClient) -> None:
    response = client.post("/api/search", data={"other": "x"})
    assert response.status_code == 422
    assert "image" in response.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/images/999999/original",
        "/api/images/999999/thumbnail",
        "/api/images/-1/original",
        "/api/images/..%2F..%2F..%2Fetc%2Fpasswd/original",
        "/api/images/1/../../../../etc/passwd",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2F..%2F..%2Fpyproject.toml",
        "/etc/passwd",
    ],
)
def test_paths_that_are_not_indexed_files_are_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "root:" not in response.text
    assert response.headers["content-type"] == "application/json"


def test_symlinks_out_of_the_folder_and_skipped_files_are_not_served(tmp_path: Path) -> None:
    folder, outside = tmp_path / "photos", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    Image.new("RGB", (120, 90), (200, 40, 40)).save(folder / "red.png")
    Image.new("RGB", (120, 90), (40, 40, 200)).save(folder / "blue.png")
    Image.new("RGB", (120, 90), (40, 200, 40)).save(outside / "secret.png")
    (folder / "linked.png").symlink_to(outside / "secret.png")  # points out of its folder
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    with Index.create(tmp_path / "index") as index:
        index.add([folder], workers=0)
    with TestClient(create_app(ServerConfig(tmp_path / "index"))) as client:
        items = {Path(i["path"]).name: i["id"] for i in client.get("/api/images").json()["items"]}
        assert set(items) == {"red.png", "blue.png", "linked.png"}  # broken.jpg was skipped
        assert client.get(f"/api/images/{items['red.png']}/original").status_code == 200
        assert client.get(f"/api/images/{items['linked.png']}/original").status_code == 404
        assert client.get(f"/api/images/{items['linked.png']}/thumbnail").status_code == 404
        skipped_id = max(items.values()) + 1
        assert client.get(f"/api/images/{skipped_id}/original").status_code == 404

        # An indexed file swapped for a symlink to a file outside, after indexing.
        blue = folder / "blue.png"
        blue.unlink()
        blue.symlink_to(outside / "secret.png")
        assert client.get(f"/api/images/{items['blue.png']}/original").status_code == 404
        assert client.get(f"/api/images/{items['blue.png']}/thumbnail").status_code == 404
        os.remove(folder / "red.png")  # vanished files are a 404 too
        assert client.get(f"/api/images/{items['red.png']}/original").status_code == 404


def test_no_cors_unless_asked(client: TestClient, served_index: Path) -> None:
    origin = {"Origin": "https://evil.example"}
    assert "access-control-allow-origin" not in client.get("/api/stats", headers=origin).headers
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in client.options("/api/search", headers=preflight).headers
    )
    config = ServerConfig(served_index, token=TOKEN, cors_origins=("https://app.example",))
    with TestClient(create_app(config)) as allowed:
        asked = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        response = allowed.options("/api/search", headers=asked)  # preflights carry no token
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = allowed.options("/api/search", headers=preflight)
        assert "access-control-allow-origin" not in other.headers


def test_security_headers_on_every_response(client: TestClient) -> None:
    for url in ["/", "/api/stats", "/api/images/999999"]:
        headers = client.get(url).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
