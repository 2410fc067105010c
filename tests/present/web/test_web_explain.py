"""The explain and layers routes over the session's real index."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from lookalike.evaluate.edits import apply_edit


def ids(client: TestClient) -> dict[str, int]:
    items = client.get("/api/images", params={"limit": 100}).json()["items"]
    return {Path(i["path"]).stem: i["id"] for i in items}


def test_why_a_result_matched_an_indexed_image(client: TestClient) -> None:
    known = ids(client)
    similar = client.get(f"/api/images/{known['chelsea']}/similar", params={"k": 8}).json()
    score = {r["id"]: r["score"] for r in similar["results"]}[known["coffee"]]
    out = client.get(
        f"/api/images/{known['chelsea']}/explain", params={"result": known["coffee"]}
    ).json()
    assert out["score"] == score  # the score the grid showed
    assert out["query"]["id"] == known["chelsea"] and out["result"]["id"] == known["coffee"]
    assert out["query"]["grid"] == [7, 7] and len(out["query"]["cells"][0][0]) == 4
    assert abs(sum(map(sum, out["query"]["heat"])) - out["total"]) < 1e-4
    region = client.get(
        f"/api/images/{known['chelsea']}/explain",
        params={"result": known["chelsea"], "x": 150, "y": 50, "w": 150, "h": 150},
    ).json()
    assert region["query"]["region"] == [150, 50, 150, 150] and region["score"] < 0.99
    missing = client.get(f"/api/images/{known['chelsea']}/explain", params={"result": 9999})
    assert missing.status_code == 404 and "9999" in missing.json()["error"]


def test_why_a_result_matched_an_upload(client: TestClient, photo_library: Path) -> None:
    known = ids(client)
    buffer = io.BytesIO()
    with Image.open(photo_library / "astronaut.jpg") as original:
        apply_edit("flip", original).save(buffer, "JPEG", quality=90)
    files = {"image": ("query.jpg", buffer.getvalue(), "image/jpeg")}
    out = client.post("/api/explain", params={"result": known["astronaut"]}, files=files).json()
    assert out["query"]["label"] == "upload" and out["query"]["id"] is None
    assert out["score"] > 0.8 and out["pairs"][0]["share"] >= out["pairs"][-1]["share"]
    bad = client.post(
        "/api/explain", params={"result": known["astronaut"]}, files={"image": ("x.jpg", b"no")}
    )
    assert bad.status_code == 415 and set(bad.json()) == {"error"}


def test_layers_of_an_indexed_image(client: TestClient) -> None:
    known = ids(client)
    out = client.get(f"/api/images/{known['moon']}/layers", params={"channels": 2}).json()
    assert [s["shape"] for s in out["stages"]] == [
        [16, 112, 112],
        [24, 56, 56],
        [40, 28, 28],
        [112, 14, 14],
        [1280, 7, 7],
    ]  # efficientnet_lite0's last block at each resolution
    assert all(len(s["maps"]) == 2 and len(s["maps"][0]) == s["shape"][1] for s in out["stages"])
    assert out["input"].startswith("data:image/png;base64,")
    assert len(out["filters"]) == 32 and out["filter_stride"] == 2
    assert client.get("/api/images/9999/layers").status_code == 404
    assert client.get("/health").json()["features"]["explain"] is True
