"""The keeper: preferred folder, preferred format, resolution, file size, capture time."""

from __future__ import annotations

from lookalike.dupes.keeper import KeeperRules, choose_keeper
from lookalike.store.record import ImageRecord


def record(
    image_id: int,
    path: str,
    width: int = 100,
    size: int = 1000,
    taken_at: str | None = None,
    fmt: str = "JPEG",
) -> ImageRecord:
    return ImageRecord(
        id=image_id,
        path=path,
        size=size,
        mtime_ns=0,
        status="ok",
        width=width,
        height=width,
        format=fmt,
        taken_at=taken_at,
    )


def test_rules_apply_in_order_and_say_which_decided() -> None:
    small = record(1, "/a/small.jpg", width=100, size=5000)
    large = record(2, "/b/large.jpg", width=200, size=100)
    assert choose_keeper([small, large], KeeperRules()) == (large, "largest resolution")
    heavier = record(3, "/c/heavier.jpg", width=200, size=200)
    assert choose_keeper([large, heavier], KeeperRules()) == (heavier, "largest file")
    early = record(4, "/d/early.jpg", width=200, size=200, taken_at="2001-01-01T10:00:00")
    late = record(5, "/d/late.jpg", width=200, size=200, taken_at="2020-01-01T10:00:00")
    assert choose_keeper([late, heavier, early], KeeperRules())[0] == early
    assert choose_keeper([late, early], KeeperRules())[1] == "earliest capture time"


def test_a_preferred_folder_or_format_comes_before_resolution() -> None:
    small = record(1, "/keep/here/small.png", width=100, fmt="PNG")
    large = record(2, "/elsewhere/large.jpg", width=400)
    rules = KeeperRules.of(folders=["/keep"])
    assert choose_keeper([large, small], rules) == (small, "in a preferred folder")
    assert choose_keeper([large, small], KeeperRules.of(formats=["png"]))[0] == small
    raw = record(3, "/x/shot.dng", width=50, fmt="DNG")
    heic = record(4, "/x/shot.heic", width=60, fmt="HEIF")
    assert choose_keeper([large, heic, raw], KeeperRules.of(formats=["raw", "heic"]))[0] == raw
    assert choose_keeper([large, heic], KeeperRules.of(formats=["raw", "heic"]))[0] == heic
    twins = [record(6, "/z/b.jpg"), record(5, "/z/a.jpg")]
    assert choose_keeper(twins, KeeperRules())[0].path == "/z/a.jpg"
