from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lookalike.errors import LookalikeError
from lookalike.files.walk import is_under, walk_images


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


IMAGE_NAMES = ["a.jpg", "b.JPEG", "sub/c.png", "sub/deep/d.webp", "e.gif", "f.bmp", "g.tiff",
               "h.heic", "i.avif"]  # fmt: skip


def test_walks_recursively_and_keeps_only_image_extensions(tmp_path: Path) -> None:
    for name in IMAGE_NAMES:
        touch(tmp_path / name)
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "sub" / "raw.cr2")
    found = sorted(os.path.relpath(e.path, tmp_path) for e in walk_images([tmp_path]))
    assert found == sorted(IMAGE_NAMES)


def test_entries_carry_absolute_path_size_and_mtime(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.png", b"12345")
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    (entry,) = walk_images([os.path.relpath(tmp_path)])
    assert entry.path == str(path) and os.path.isabs(entry.path)
    assert (entry.size, entry.mtime_ns) == (5, 2_000_000_000)


def test_symlink_loops_end_and_linked_folders_are_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    found = list(walk_images([tmp_path]))
    assert len(found) == 1


def test_a_file_root_is_yielded_and_a_missing_root_is_an_error(tmp_path: Path) -> None:
    path = touch(tmp_path / "single.jpg")
    assert [e.path for e in walk_images([path])] == [str(path)]
    with pytest.raises(LookalikeError, match="no such file or folder"):
        list(walk_images([tmp_path / "missing"]))


def test_unreadable_folder_is_reported_not_fatal(
    shared_tmp: Path, as_unprivileged: Callable[[Callable[[], object]], tuple[str, str]]
) -> None:
    touch(shared_tmp / "ok.jpg").chmod(0o644)
    locked = shared_tmp / "locked"
    touch(locked / "hidden.jpg")
    locked.chmod(0)

    def walk() -> object:
        errors: list[tuple[str, str]] = []
        found = [
            os.path.basename(e.path)
            for e in walk_images([shared_tmp], lambda p, r: errors.append((p, r)))
        ]
        return found, errors

    kind, text = as_unprivileged(walk)
    assert kind == "ok", text
    assert "['ok.jpg']" in text and "cannot list folder" in text and str(locked) in text


def test_is_under_matches_whole_path_components() -> None:
    assert is_under("/photos/a.jpg", ["/photos"]) and is_under("/photos/a.jpg", ["/photos/"])
    assert is_under("/photos", ["/photos"])
    assert is_under("/anything.jpg", ["/"])
    assert not is_under("/photos-old/a.jpg", ["/photos"])
    assert not is_under("/other/a.jpg", ["/photos", "/pics"])


def walk_with_errors(
    root: Path, exclude: list[Path] | None = None
) -> tuple[list[str], dict[str, str]]:
    errors: dict[str, str] = {}
    found = [
        os.path.relpath(e.path, root)
        for e in walk_images([root], lambda p, r: errors.update({p: r}), exclude or [])
    ]
    return found, {os.path.relpath(p, root): r for p, r in errors.items()}


def test_fifos_and_dangling_symlinks_are_reported_and_never_opened(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block this test for ever
    os.mkfifo(tmp_path / "pipe.log")  # no image name: not a candidate, not reported
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "drive").symlink_to(tmp_path / "unmounted")  # could have been a folder
    (tmp_path / "notes.txt").symlink_to(tmp_path / "nowhere.txt")  # says it is no image
    found, errors = walk_with_errors(tmp_path)
    assert found == ["a.jpg"]
    assert errors == {
        "pipe.jpg": "not a regular file (a FIFO)",
        "gone.jpg": f"dangling symlink (to {tmp_path / 'nowhere.jpg'})",
        "drive": f"dangling symlink (to {tmp_path / 'unmounted'})",
    }


def test_hidden_folders_and_excluded_folders_are_not_walked(tmp_path: Path) -> None:
    for name in ["a.jpg", ".thumbnails/t.jpg", "sub/.cache/c.png", "idx/thumbnails/1-256.jpg",
                 ".hidden-file.jpg", "sub/b.png"]:  # fmt: skip
        touch(tmp_path / name)
    (tmp_path / "alias").symlink_to(tmp_path / "idx")  # the excluded folder by another name
    found, errors = walk_with_errors(tmp_path, exclude=[tmp_path / "idx"])
    assert sorted(found) == [".hidden-file.jpg", "a.jpg", "sub/b.png"] and not errors
    hidden_root, _ = walk_with_errors(tmp_path / ".thumbnails")  # asked for by name: walked
    assert hidden_root == ["t.jpg"]
