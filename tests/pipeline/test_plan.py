"""Planning an add: what the walk skips is recorded, and absence is not taken as deletion."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lookalike import Index
from lookalike.errors import LookalikeError


@pytest.fixture
def index(tmp_path: Path) -> Index:
    # seed_cnn: the small network, so each test costs a second, not the default model's export
    return Index.create(tmp_path / "idx", model="seed_cnn")


def test_walk_skips_are_recorded_as_the_run_reports_them(index: Index, photos: Path) -> None:
    os.mkfifo(photos / "pipe.jpg")
    (photos / "gone.jpg").symlink_to(photos / "deleted.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    report = index.add([photos])
    assert report.added == 8
    assert sorted(report.skipped) == sorted(index.skipped())
    reasons = dict(report.skipped)
    assert reasons[str(photos / "pipe.jpg")] == "not a regular file (a FIFO)"
    assert reasons[str(photos / "gone.jpg")].startswith("dangling symlink")
    assert "not an image" in reasons[str(photos / "broken.jpg")]
    (photos / "pipe.jpg").unlink()
    (photos / "gone.jpg").unlink()
    again = index.add([photos])
    assert (again.removed, again.unchanged) == (0, 9)  # skipped records go without a "removed"
    assert [p for p, _ in index.skipped()] == [str(photos / "broken.jpg")]


def test_the_index_directory_and_hidden_folders_are_not_indexed(
    photos: Path, tmp_path: Path
) -> None:
    with Index.create(photos / "idx", model="seed_cnn") as index:
        thumbnails = photos / "idx" / "thumbnails"
        thumbnails.mkdir()
        shutil.copy(photos / "coins.jpg", thumbnails / "1-256.jpg")
        (photos / ".cache").mkdir()
        shutil.copy(photos / "moon.jpg", photos / ".cache" / "moon.jpg")
        report = index.add([photos])
        assert (report.added, report.skipped, len(index)) == (8, [], 8)


def test_files_behind_a_dangling_folder_link_are_kept_and_come_back_unchanged(
    index: Index, photos: Path, tmp_path: Path
) -> None:
    drive = tmp_path / "drive"
    photos.rename(drive)
    root = tmp_path / "root"
    root.mkdir()
    (root / "photos").symlink_to(drive)
    assert index.add([root]).added == 8
    drive.rename(tmp_path / "elsewhere")  # the drive is unmounted: the link dangles
    away = index.add([root])
    assert (away.removed, len(index)) == (0, 8)
    assert (
        away.skipped
        == index.skipped()
        == [(str(root / "photos"), f"dangling symlink (to {drive})")]
    )
    (tmp_path / "elsewhere").rename(drive)
    back = index.add([root])
    assert (back.removed, back.unchanged, back.added, back.skipped) == (0, 8, 0, [])
    assert index.skipped() == []


def test_a_missing_or_empty_root_keeps_its_files_unless_pruned(
    index: Index, photos: Path, tmp_path: Path
) -> None:
    index.add([photos])
    shutil.rmtree(photos)
    missing = index.add([photos])
    kept = "folder is missing; its 8 indexed files are kept (use --prune to remove them)"
    assert (missing.removed, len(index), missing.skipped) == (0, 8, [(str(photos), kept)])
    photos.mkdir()  # a mount point, the drive unmounted
    empty = index.add([photos])
    assert empty.removed == 0 and empty.skipped[0][1].startswith("folder is empty; its 8")
    assert index.skipped() == empty.skipped
    pruned = index.add([photos], prune=True)
    assert (pruned.removed, len(index), index.skipped()) == (8, 0, [])
    with pytest.raises(LookalikeError, match="no such file or folder"):
        index.add([tmp_path / "never-indexed"])


def test_a_missing_file_given_by_name_stays_indexed(index: Index, photos: Path) -> None:
    index.add([photos / "moon.jpg"])
    (photos / "moon.jpg").unlink()
    report = index.add([photos / "moon.jpg"])
    assert (report.removed, len(index), index.skipped()) == (0, 1, [])
    assert report.skipped == [
        (str(photos / "moon.jpg"), "file is missing; it stays indexed (use --prune)")
    ]
    assert index.add([photos / "moon.jpg"], prune=True).removed == 1
