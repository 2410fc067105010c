"""Safety: Host names, token, loopback, upload limits, non-images, paths that are not indexed
files, ids out of range, CORS."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.config import load_settings
from lookalike.index import Index
from lookalike.present.cli import build_parser, main
from lookalike.present.web.cli import bind, is_loopback, server_config
from lookalike.present.web.service import ServerConfig

TOKEN = "s3cret-token"
Serve = Callable[[ServerConfig], TestClient]  # the ``serve`` fixture


def png_bytes(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def secret_folder(tmp_path: Path) -> Path:
    """A readable folder of images that is not in the index."""
    folder = tmp_path / "sec"
    folder.mkdir()
    Image.new("RGB", (120, 90), (200, 40, 40)).save(folder / "private.png")
    return folder


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example:80"],
)
def test_requests_for_another_host_name_are_refused(
    client: TestClient, secret_folder: Path, host: str
) -> None:
    # DNS rebinding: a page on evil.example re-points its name to 127.0.0.1; its requests
    # reach this server as same-origin ones, but they carry its name in the Host header.
    evil = {"Host": host}
    job = client.post("/api/jobs", json={"paths": [str(secret_folder)]}, headers=evil)
    listing = client.get("/api/images", params={"folder": str(secret_folder)}, headers=evil)
    image_id = client.get("/api/images").json()["items"][0]["id"]
    for response in [
        job,
        listing,
        client.get(f"/api/images/{image_id}/original", headers=evil),
        client.get("/", headers=evil),
        client.get("/health", headers=evil),
    ]:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert "--allowed-host" in response.json()["error"]
    assert client.get("/health").json()["images"] == 8  # the job never ran
    assert TestClient(client.app).get("/health").status_code == 400  # Host: testserver


def test_loopback_names_and_allowed_hosts_are_answered(
    client: TestClient, served_index: Path, serve: Serve
) -> None:
    for host in ["localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"]:
        assert client.get("/api/stats", headers={"Host": host}).status_code == 200, host
    config = ServerConfig(served_index, token=TOKEN, allowed_hosts=("photos.example",))
    with serve(config) as proxied:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        answered = proxied.get("/api/stats", headers={**bearer, "Host": "photos.example:443"})
        assert answered.status_code == 200
        assert (
            proxied.get("/api/stats", headers={**bearer, "Host": "evil.example"}).status_code == 400
        )


def test_serve_flags_make_the_server_config(
    served_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOKALIKE_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    settings = load_settings(index=served_index)
    serve = ["serve", "--index", str(served_index)]
    default = server_config(build_parser().parse_args(serve), settings)
    assert default.allowed_hosts == ("127.0.0.1",) and default.allowed_roots is None
    assert default.max_upload_pixels == 40_000_000
    args = build_parser().parse_args(
        [
            *serve,
            *["--host", "0.0.0.0", "--token", "t", "--allowed-host", "photos.example"],
            *["--allow-root", "photos", "--allow-root", "/", "--max-upload-pixels", "2.5e6"],
        ]
    )
    config = server_config(args, settings)
    assert config.allowed_hosts == ("photos.example",)  # no request names 0.0.0.0
    assert config.allowed_roots == (str(tmp_path / "photos"), "/")
    assert config.max_upload_pixels == 2_500_000
    assert main([*serve, "--allow-root", str(tmp_path / "none")]) == 1
    assert "--allow-root" in capsys.readouterr().err
    assert main([*serve, "--max-upload-pixels", "0"]) == 1
    assert "must be positive" in capsys.readouterr().err


@pytest.fixture(scope="module")
def guarded(served_index: Path, serve: Serve) -> Iterator[TestClient]:
    with serve(ServerConfig(served_index, token=TOKEN)) as client:
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
def small_limit(served_index: Path, serve: Serve) -> Iterator[TestClient]:
    with serve(ServerConfig(served_index, max_upload_bytes=50_000)) as client:
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


@pytest.fixture(scope="module")
def pixel_limit(served_index: Path, serve: Serve) -> Iterator[TestClient]:
    with serve(ServerConfig(served_index, max_upload_pixels=2_000_000)) as client:
        yield client


def test_uploads_over_the_pixel_limit_are_refused_from_their_header(
    pixel_limit: TestClient, photo_library: Path
) -> None:
    big = png_bytes((1500, 1500))  # 2.25 megapixels, a few kilobytes
    response = pixel_limit.post("/api/search", files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert "1500x1500" in response.json()["error"] and "2 megapixels" in response.json()["error"]
    small = png_bytes((1000, 1000))
    assert (
        pixel_limit.post("/api/search", files={"image": ("s.png", small, "image/png")}).status_code
        == 200
    )
    # A JPEG decodes at reduced size: this 16.8-megapixel one costs 1 megapixel.
    buffer = io.BytesIO()
    with Image.open(photo_library / "astronaut.jpg") as astronaut:
        astronaut.resize((4096, 4096)).save(buffer, "JPEG", quality=80)
    response = pixel_limit.post(
        "/api/search", files={"image": ("a.jpg", buffer.getvalue(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["path"] == str(photo_library / "astronaut.jpg")


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


@pytest.mark.parametrize(
    "url",
    [
        "/api/images/{id}",
        "/api/images/{id}/similar",
        "/api/images/{id}/thumbnail",
        "/api/images/{id}/original",
    ],
)
def test_ids_beyond_sqlite_integers_are_a_4xx(client: TestClient, url: str) -> None:
    for image_id in [2**63, 2**64 + 5, 10**30]:
        response = client.get(url.format(id=image_id))
        assert response.status_code == 422
        assert "image_id" in response.json()["error"]
    assert client.get(url.format(id=2**63 - 1)).status_code == 404


def test_filters_beyond_sqlite_integers_are_a_422(client: TestClient) -> None:
    image_id = client.get("/api/images").json()["items"][0]["id"]
    for name in ["min_width", "min_height"]:
        response = client.get(f"/api/images/{image_id}/similar", params={name: 2**63})
        assert response.status_code == 422
        assert name in response.json()["error"]


def test_the_collection_and_the_filters_show_only_indexed_files(
    client: TestClient, secret_folder: Path, photo_library: Path
) -> None:
    outside = client.get("/api/images", params={"folder": str(secret_folder)}).json()
    assert (outside["total"], outside["items"]) == (0, [])
    everything = client.get("/api/images", params={"folder": "/", "limit": 500}).json()
    assert sorted(i["path"] for i in everything["items"]) == sorted(
        str(p) for p in photo_library.glob("*.jpg")
    )
    image_id = everything["items"][0]["id"]
    by_id = client.get(f"/api/images/{image_id}/similar", params={"folder": str(secret_folder)})
    assert by_id.json()["results"] == []
    by_upload = client.post(
        "/api/search",
        params={"folder": str(secret_folder)},
        files={"image": ("p.png", (secret_folder / "private.png").read_bytes(), "image/png")},
    )
    assert by_upload.json()["results"] == []


def test_symlinks_out_of_the_folder_and_skipped_files_are_not_served(
    tmp_path: Path, serve: Serve
) -> None:
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
    with serve(ServerConfig(tmp_path / "index")) as client:
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


def test_no_cors_unless_asked(client: TestClient, served_index: Path, serve: Serve) -> None:
    origin = {"Origin": "https://evil.example"}
    assert "access-control-allow-origin" not in client.get("/api/stats", headers=origin).headers
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in client.options("/api/search", headers=preflight).headers
    )
    config = ServerConfig(served_index, token=TOKEN, cors_origins=("https://app.example",))
    with serve(config) as allowed:
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


def test_the_listening_socket_sends_small_responses_at_once() -> None:
    # accepted connections inherit TCP_NODELAY: a kept-alive client's next answer is not
    # held 40 ms for its delayed ACK
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
