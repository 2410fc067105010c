"""Hostile files through the real command: odd names, bad EXIF, FIFOs, unmounted drives."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def strict_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print as a UTF-8 terminal does (this machine's C.UTF-8 locale lets lone surrogates
    through to stdout as raw bytes, which would hide a name that cannot be printed)."""
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")


@pytest.mark.usefixtures("strict_output")
def test_a_name_that_is_not_utf8_is_indexed_found_and_removed(
    run_cli: Cli, photos: Path, tmp_path: Path
) -> None:
    odd = os.fsdecode(os.fsencode(photos) + b"/caf\xe9.jpg")  # Latin-1 é
    shutil.move(photos / "coffee.jpg", odd)
    idx = str(tmp_path / "idx")
    first = run_cli("index", str(photos), "--index", idx, check=True)
    assert "added 8, updated 0, removed 0, unchanged 0, skipped 0" in first.stdout
    again = run_cli("index", str(photos), "--index", idx, check=True)
    assert "unchanged 8, skipped 0" in again.stdout
    found = run_cli("search", odd, "--index", idx, "--json", "-k", "2", check=True)
    best = json.loads(found.stdout)["results"][0]
    assert best["path"] == odd and best["score"] == pytest.approx(1.0, abs=1e-4)
    table = run_cli("search", odd, "--index", idx, "-k", "1", check=True).stdout
    assert f"{photos}/caf\\xe9.jpg" in table  # shown with an escape, printable anywhere
    removed = run_cli("remove", odd, "--index", idx, check=True)
    assert "removed 1 file(s)" in removed.stdout
    assert "images    7" in run_cli("info", "--index", idx, check=True).stdout


def test_bad_exif_is_indexed_and_the_run_and_info_list_the_same_skips(
    run_cli: Cli, photos: Path, tmp_path: Path
) -> None:
    # orientation 6, then an XResolution of type ASCII: rotating used to raise TypeError
    block = b"Exif\0\0II*\0" + struct.pack("<IH", 8, 2)
    block += struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<HHI", 0x011A, 2, 4)
    block += b"abc\0" + bytes(4)
    with Image.open(photos / "chelsea.jpg") as cat:
        cat.save(photos / "odd-exif.jpg", exif=block, quality=90)
    os.mkfifo(photos / "pipe.jpg")
    (photos / "link.jpg").symlink_to(photos / "deleted.jpg")
    (photos / "notes.jpg").write_text("not a picture")
    idx = str(tmp_path / "idx")
    indexed = run_cli("index", str(photos), "--index", idx, check=True)
    assert "added 9" in indexed.stdout and "Warning" not in indexed.stderr
    info = run_cli("info", "--skipped", "--index", idx, check=True).stdout
    ran = sorted(s.strip() for s in indexed.stdout.splitlines() if "  skipped /" in s)
    listed = sorted(line for line in info.splitlines() if line.startswith("skipped /"))
    assert len(ran) == 3 and ran == listed
    assert f"skipped {photos / 'pipe.jpg'}: not a regular file (a FIFO)" in ran
    found = run_cli("search", str(photos / "odd-exif.jpg"), "--index", idx, "--json", check=True)
    assert json.loads(found.stdout)["results"][0]["path"] == str(photos / "odd-exif.jpg")


def test_a_folder_query_and_a_bad_batch_size_are_one_line_errors(
    run_cli: Cli, built_index: Path, tmp_path: Path
) -> None:
    folder = run_cli("search", str(tmp_path), "--index", str(built_index))
    assert folder.returncode == 1 and "is a folder, not an image file" in folder.stderr
    for given in (("--batch-size", "0"), ("--batch-size", "-1")):
        bad = run_cli("index", str(tmp_path), "--index", str(tmp_path / "i"), *given)
        assert bad.returncode == 1
        assert bad.stderr == f"lookalike: error: batch size must be at least 1, got {given[1]}\n"
    os.environ["LOOKALIKE_BATCH_SIZE"] = "0"
    try:
        env = run_cli("search", str(tmp_path), "--index", str(built_index))
    finally:
        del os.environ["LOOKALIKE_BATCH_SIZE"]
    assert env.returncode == 1 and "batch size must be at least 1, got 0" in env.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; "
                    "tests/pipeline/test_plan.py covers a removed folder")  # fmt: skip
def test_an_unmounted_drive_keeps_its_files_until_pruned(
    run_cli: Cli, photo_library: Path, tmp_path: Path
) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(drive)])
    if mounted.returncode != 0:
        pytest.skip("this machine refuses to mount a tmpfs")
    try:
        shutil.copytree(photo_library, drive / "photos")
        idx = str(tmp_path / "idx")
        assert "added 8" in run_cli("index", str(drive), "--index", idx, check=True).stdout
    finally:
        subprocess.run(["umount", str(drive)], check=True)
    kept = run_cli("index", str(drive), "--index", idx, check=True).stdout
    assert "removed 0" in kept
    assert f"skipped {drive}: folder is empty; its 8 indexed files are kept" in kept
    assert "images    8" in run_cli("info", "--index", idx, check=True).stdout
    pruned = run_cli("index", str(drive), "--index", idx, "--prune", check=True).stdout
    assert "removed 8" in pruned
    assert "images    0" in run_cli("info", "--index", idx, check=True).stdout
