"""A damaged index heals or says so: vector cache, catalogue, replaced index, full disk,
read-only index, bad --index paths. The catalogue is the source of truth throughout."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from lookalike import Index
from lookalike.errors import LookalikeWarning, StoreError
from lookalike.store import LocalStore, Upsert
from lookalike.store.check import backup_index, check_index
from lookalike.store.vectors import save_base, saved_generations

Cli = Callable[..., subprocess.CompletedProcess[str]]
DIM = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def small_store(directory: Path, n: int = 20) -> LocalStore:
    store = LocalStore.create(directory, "m", "m", DIM)
    with store.writing():
        store.write([Upsert(f"/p/{i}.jpg", 1, 1, unit(i)) for i in range(n)])
    return store


def vector_file(directory: Path) -> Path:
    (generation,) = saved_generations(directory)
    return directory / f"vectors-{generation}.faiss"


def top_scores(store: LocalStore) -> list[float]:
    return [s for _, s in store.search(unit(3)[None], 20)[0]]


@pytest.mark.parametrize("damage", ["one vector", "truncated", "zeroed"])
def test_a_damaged_vector_cache_is_rebuilt_from_the_catalogue(tmp_path: Path, damage: str) -> None:
    directory = tmp_path / "idx"
    small_store(directory).close()
    clean = top_scores(LocalStore.open(directory))
    path = vector_file(directory)
    data = bytearray(path.read_bytes())
    if damage == "one vector":  # plausible floats: only a checksum can tell
        data[-200:-168] = np.full(8, 25.0, np.float32).tobytes()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = bytearray(len(data))
    path.write_bytes(bytes(data))

    store = LocalStore.open(directory)
    with pytest.warns(LookalikeWarning, match="rebuilding it from the catalogue"):
        assert top_scores(store) == pytest.approx(clean)
    with store.writing():  # the next write saves the rebuilt vectors, not the damage
        store.write([Upsert("/p/new.jpg", 1, 1, unit(99))])
    store.close()
    reopened = LocalStore.open(directory)
    assert max(top_scores(reopened)) <= 1.0 + 1e-5  # and no warning: pytest fails on none
    assert check_index(directory).ok


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "bad header", "garbage inside"])
def test_a_damaged_catalogue_is_one_clear_error_and_check_repairs_it(
    built_index: Path, photo_library: Path, tmp_path: Path, run_cli: Cli, damage: str
) -> None:
    directory = tmp_path / "idx"
    shutil.copytree(built_index, directory, ignore=shutil.ignore_patterns("*.faiss"))
    path = directory / "catalogue.sqlite"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[:4096]
    elif damage == "zeroed":
        data = bytearray(len(data))
    elif damage == "bad header":
        data[:16] = b"not a database!!"
    else:  # a page inside the file that every open reads (the whitening table's), found by
        # name so that a table added to the schema does not move the damage elsewhere
        with contextlib.closing(sqlite3.connect(path)) as conn:
            (page,) = conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'whitening'"
            ).fetchone()
        data[(page - 1) * 4096 : page * 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))

    for command in (["info"], ["search", str(photo_library / "moon.jpg")]):
        failed = run_cli(*command, "--index", str(directory))
        assert failed.returncode == 1, failed.stdout
        assert failed.stderr.count("\n") == 1 and "is damaged" in failed.stderr
        assert "lookalike check" in failed.stderr and "Traceback" not in failed.stderr

    checked = run_cli("check", "--index", str(directory))
    assert checked.returncode == 1 and "repair with" in checked.stdout
    if damage != "garbage inside":  # nothing left to save: a clear error, no traceback
        repaired = run_cli("check", "--repair", "--index", str(directory))
        assert repaired.returncode == 1 and repaired.stderr.startswith("lookalike: error:")
        return
    repaired = run_cli("check", "--repair", "--index", str(directory), check=True)
    assert "repaired: kept" in repaired.stdout
    assert list(directory.glob("catalogue.sqlite.damaged-*"))
    # What was lost is embedded again; the index ends as it was built.
    run_cli("index", str(photo_library), "--index", str(directory), check=True)
    assert run_cli("check", "--index", str(directory), check=True).stdout.endswith(
        "ok (8 images)\n"
    )
    with Index.open(directory) as index:
        moon = str(photo_library / "moon.jpg")
        assert index.search(moon, k=1)[0].path == moon


def test_backup_is_a_working_copy(built_index: Path, photo_library: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    assert backup_index(built_index, copy) == 8
    with Index.open(built_index) as original, Index.open(copy) as backup:
        coins = str(photo_library / "coins.jpg")
        assert [h.path for h in backup.search(coins, k=8)] == [
            h.path for h in original.search(coins, k=8)
        ]
    with pytest.raises(StoreError, match="already holds an index"):
        backup_index(built_index, copy)


def test_a_reader_notices_the_index_was_replaced(tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    small_store(directory).close()
    reader = LocalStore.open(directory)
    assert reader.search(unit(3)[None], 1)[0][0][0].path == "/p/3.jpg"
    shutil.rmtree(directory)
    fresh = LocalStore.create(directory, "m", "m", DIM)
    with fresh.writing():
        fresh.write([Upsert(f"/q/{i}.jpg", 1, 1, unit(i + 100)) for i in range(5)])
    fresh.close()
    best, score = reader.search(unit(103)[None], 1)[0][0]
    assert (best.path, round(score, 5)) == ("/q/3.jpg", 1.0)  # new records with new vectors
    assert reader.count() == 5
    reader.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_clear_error_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    store = LocalStore.create(mount / "idx", "m", "m", 1024)
    try:
        rng = np.random.default_rng(0)
        with pytest.raises(StoreError) as raised, store.writing():
            for batch in range(40):  # the catalogue or the vector cache runs out of room
                vectors = rng.normal(size=(8, 1024)).astype(np.float32)
                store.write([Upsert(f"/p/{batch}-{i}.jpg", 1, 1, v) for i, v in enumerate(vectors)])
        assert "\n" not in str(raised.value)
        assert "full" in str(raised.value) or "space" in str(raised.value)
        store.close()
        for name in os.listdir(mount / "idx"):  # room again: the next writer tidies up
            if name.endswith(".faiss"):
                os.unlink(mount / "idx" / name)
        store = LocalStore.open(mount / "idx")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with store.writing():  # no base is left: it tries to save one, may find no room
                pass
        assert all("\n" not in str(w.message) and "space" in str(w.message) for w in caught)
        assert not [n for n in os.listdir(mount / "idx") if n.endswith(".tmp")]
        committed = store.count()
        assert committed >= 8
        assert committed == len(store.search(rng.normal(size=(1, 1024)), 1000)[0])
        # The vector cache's own save on a full disk: one error, no temporary file left.
        with open(mount / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(bytes(65536))
        with pytest.raises(
            StoreError, match=r"vectors-\d+\.faiss: No space left on device \(nothing is lost"
        ):
            save_base(store.directory, store.catalogue, np.random.default_rng(0))
        assert not [n for n in os.listdir(mount / "idx") if n.endswith(".tmp")]
    finally:
        store.close()
        subprocess.run(["umount", str(mount)], check=True)


def test_an_index_others_may_only_read_is_searched_read_only(
    built_index: Path,
    photo_library: Path,
    shared_tmp: Path,
    as_unprivileged: Callable[[Callable[[], object]], tuple[str, str]],
) -> None:
    directory = shared_tmp / "idx"
    shutil.copytree(built_index, directory)
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    moon = str(photo_library / "moon.jpg")

    def search() -> object:
        # The forked child inherits the parent's OpenMP thread pool, which deadlocks when
        # reused after a fork: FAISS runs on this thread alone here.
        faiss.omp_set_num_threads(1)
        with Index.open(directory) as index:
            return (len(index), index.search(moon, k=1)[0].path)

    assert as_unprivileged(search) == ("ok", repr((8, moon)))


def test_bad_index_paths_are_one_line_errors(tmp_path: Path, photos: Path, run_cli: Cli) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {
        str(a_file): "it is a file",
        str(a_file / "idx"): "a part of that path is a file",
    }
    for index_dir, message in cases.items():
        failed = run_cli("index", str(photos), "--index", index_dir)
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
        assert message in failed.stderr
    searched = run_cli("search", str(photos / "moon.jpg"), "--index", str(a_file))
    assert searched.returncode == 1 and "it is a file, not a folder" in searched.stderr
