"""The real `lookalike` command, end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from lookalike import Index
from lookalike.evaluate.edits import EDITS, apply_edit

Cli = Callable[..., subprocess.CompletedProcess[str]]


def edited_queries(photo_library: Path, folder: Path) -> dict[Path, Path]:
    """Edited copies of some library photos -> the original each should find."""
    folder.mkdir()
    pairs = {}
    for name, edit in [("chelsea", "centre_crop"), ("coffee", "rotate_10"), ("rocket", "flip")]:
        with Image.open(photo_library / f"{name}.jpg") as image:
            apply_edit(edit, image).save(folder / f"{name}-{edit}.jpg", quality=85)
        pairs[folder / f"{name}-{edit}.jpg"] = photo_library / f"{name}.jpg"
    return pairs


def test_index_reports_good_and_bad_files_then_reruns_incrementally(
    run_cli: Cli, photos: Path, tmp_path: Path
) -> None:
    (photos / "notes.jpg").write_text("not a picture")
    (photos / "cut.jpg").write_bytes((photos / "coins.jpg").read_bytes()[:3000])
    idx = str(tmp_path / "idx")
    first = run_cli("index", str(photos), "--index", idx, check=True)
    assert "added 8, updated 0, removed 0, unchanged 0, skipped 2" in first.stdout
    assert f"skipped {photos / 'notes.jpg'}: not an image" in first.stdout
    assert f"skipped {photos / 'cut.jpg'}: truncated or corrupt" in first.stdout
    second = run_cli("index", str(photos), "--index", idx, check=True)
    assert "added 0, updated 0, removed 0, unchanged 10, skipped 0" in second.stdout
    info = run_cli("info", "--skipped", "--index", idx, check=True).stdout
    assert "images    8" in info and "skipped   2" in info and "notes.jpg: not an image" in info


def test_search_json_answers_many_queries_in_the_contract_shape(
    run_cli: Cli, built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    pairs = edited_queries(photo_library, tmp_path / "queries")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{q}\n" for q in pairs))
    search = ("search", "--index", str(built_index), "--json", "-k", "3")
    result = run_cli(*search, "--queries-from", str(listing), check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == len(pairs)
    for line, (query, original) in zip(lines, pairs.items(), strict=True):
        answer = json.loads(line)
        assert answer["query"] == str(query)
        assert len(answer["results"]) == 3
        assert {"path", "score"} <= set(answer["results"][0])
        assert answer["results"][0]["path"] == str(original)
    # results come in rank order; spatial re-ranking may swap near-ties (scores stay
    # cosines), so the order is the scores' only by the vectors alone
    by_vectors = run_cli(*search, "--no-rerank", "--queries-from", str(listing), check=True)
    for line in by_vectors.stdout.splitlines():
        scores = [r["score"] for r in json.loads(line)["results"]]
        assert scores == sorted(scores, reverse=True)


def test_search_reads_an_image_from_stdin_and_prints_a_table(
    run_cli: Cli, built_index: Path, photo_library: Path
) -> None:
    image = (photo_library / "moon.jpg").read_bytes()
    env = dict(os.environ)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lookalike.present.cli",
            "search",
            "-",
            "--index",
            str(built_index),
            "-k",
            "2",
        ],
        input=image,
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    )
    lines = result.stdout.decode().splitlines()
    assert lines[1] == "-" and "rank  score  path" in lines[2]
    assert lines[3].split()[:3] == ["1", "1.000", str(photo_library / "moon.jpg")]


def test_exclude_self_and_query_errors(
    run_cli: Cli, built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    query = str(photo_library / "camera.jpg")
    out = run_cli(
        "search", query, "--index", str(built_index), "--json", "--exclude-self", check=True
    )
    assert query not in {r["path"] for r in json.loads(out.stdout)["results"]}
    (tmp_path / "bad.png").write_text("text")
    failed = run_cli("search", str(tmp_path / "bad.png"), "--index", str(built_index), "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"].startswith("not an image")


def test_search_filters_and_region_from_the_command_line(
    run_cli: Cli, built_index: Path, photo_library: Path
) -> None:
    def paths(*args: str) -> list[str]:
        out = run_cli("search", *args, "--index", str(built_index), "--json", check=True)
        return [r["path"] for r in json.loads(out.stdout)["results"]]

    moon = str(photo_library / "moon.jpg")
    wide = paths(moon, "--min-width", "600", "-k", "8")  # coffee 600, rocket 640, retina 1411
    assert sorted(Path(p).name for p in wide) == ["coffee.jpg", "retina.jpg", "rocket.jpg"]
    assert paths(moon, "--folder", str(photo_library / "elsewhere")) == []
    assert len(paths(moon, "--folder", str(photo_library), "-k", "3")) == 3
    assert paths(moon, "--taken-after", "2020-01-01") == []  # these photos have no EXIF date
    # The cat's head in chelsea (451x300) finds chelsea first.
    assert paths(str(photo_library / "chelsea.jpg"), "--region", "140,20,200,180")[0].endswith(
        "chelsea.jpg"
    )
    bad = run_cli("search", moon, "--index", str(built_index), "--region", "1,2,3")
    assert bad.returncode == 2 and "a region is x,y,w,h" in bad.stderr


def test_errors_are_one_line_with_nonzero_exit(
    run_cli: Cli, tmp_path: Path, built_index: Path
) -> None:
    missing = run_cli("search", "x.jpg", "--index", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith(
        "lookalike: error: no index at"
    )
    other_model = run_cli("search", "x.jpg", "--index", str(built_index), "--model", "seed_cnn")
    assert (
        other_model.returncode == 1
        and "made with model 'efficientnet_lite0_gem'" in other_model.stderr
    )


def test_remove_drops_files(run_cli: Cli, photos: Path, tmp_path: Path) -> None:
    idx = str(tmp_path / "idx")
    run_cli("index", str(photos), "--index", idx, check=True)
    assert (
        run_cli("remove", str(photos / "moon.jpg"), "--index", idx, check=True).stdout
        == "removed 1 file(s)\n"
    )
    assert "images    7" in run_cli("info", "--index", idx, check=True).stdout
    assert "vectors   flat\n" in run_cli("info", "--index", idx, check=True).stdout
    measured = run_cli("info", "--recall", "--json", "--index", idx, check=True).stdout
    assert json.loads(measured)["recall_at_10"] == 1.0  # exact search finds all it should
    assert "vectors   flat, recall@10 1.000" in run_cli("info", "--index", idx).stdout


# crashes and concurrent writers


@pytest.fixture(scope="module")
def many_photos(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 small real images (edits of the library photos): a run of a few seconds."""
    folder = tmp_path_factory.mktemp("many")
    for original in sorted(photo_library.glob("*.jpg")):
        with Image.open(original) as image:
            image.thumbnail((256, 256))
            for edit in EDITS:
                apply_edit(edit, image).save(folder / f"{original.stem}-{edit}.jpg")
    return folder


def start_indexing(folder: Path, index_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike.present.cli",
            "index",
            str(folder),
            "--index",
            str(index_dir),
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # PyTorch float32 is the slowest runtime: the run lasts long enough to be interrupted
        # (int8 ONNX indexes these 96 small images before a second CLI has even started).
        env={**os.environ, "LOOKALIKE_RUNTIME": "torch"},
    )


def wait_for_rows(index_dir: Path, at_least: int, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "indexing ended before the test could interrupt it"
        try:
            with sqlite3.connect(f"file:{index_dir / 'catalogue.sqlite'}?mode=ro", uri=True) as db:
                rows = int(db.execute("SELECT count(*) FROM images").fetchone()[0])
            if rows >= at_least:
                return rows
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)
    raise AssertionError("no rows committed in time")


@pytest.mark.slow
def test_kill_9_mid_run_leaves_a_working_index_that_completes(
    many_photos: Path, tmp_path: Path, run_cli: Cli
) -> None:
    total = len(list(many_photos.glob("*.jpg")))
    index_dir = tmp_path / "idx"
    process = start_indexing(many_photos, index_dir)
    wait_for_rows(index_dir, 8, process)
    process.send_signal(signal.SIGKILL)
    process.wait()

    with Index.open(index_dir) as index:
        committed = len(index)
        assert 8 <= committed < total
        some = next(index.store.iter_records("ok")).path
        assert index.search(some, k=1)[0].path == some  # answers for what was committed

    rerun = run_cli("index", str(many_photos), "--index", str(index_dir), check=True)
    assert f"added {total - committed}, updated 0, removed 0, unchanged {committed}" in rerun.stdout
    with Index.open(index_dir) as index:
        assert len(index) == total
        assert len(index.store.vectors) == total


def test_a_second_writer_is_refused_while_readers_go_on(
    photos: Path, photo_library: Path, tmp_path: Path, run_cli: Cli
) -> None:
    """This test process is the first writer (holding the lock as `index` does); the CLI is the
    second. Holding it here, rather than racing a background run, makes the overlap certain."""
    index_dir = tmp_path / "idx"
    run_cli("index", str(photos), "--index", str(index_dir), check=True)
    with Index.open(index_dir) as index, index.store.writing():
        second = run_cli("index", str(photo_library), "--index", str(index_dir))
        assert second.returncode == 1
        assert second.stderr == (
            f"lookalike: error: index {index_dir} is locked by PID {os.getpid()} "
            "(another writer is running)\n"
        )
        reader = run_cli("search", str(photos / "coins.jpg"), "--index", str(index_dir), "--json")
        assert reader.returncode == 0
        assert json.loads(reader.stdout)["results"][0]["path"] == str(photos / "coins.jpg")
    # once the first writer is done, the second goes ahead
    assert run_cli("index", str(photo_library), "--index", str(index_dir)).returncode == 0


def test_progress_bar_on_a_terminal_only(photos: Path, tmp_path: Path, run_cli: Cli) -> None:
    """On a TTY: a bar with count, rate and ETA. Piped: none. --quiet: nothing at all."""
    main_end, terminal_end = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike.present.cli",
            "index",
            str(photos),
            "--index",
            str(tmp_path / "tty-idx"),
        ],
        stdout=subprocess.PIPE,
        stderr=terminal_end,
    )
    os.close(terminal_end)
    shown = b""
    while True:
        try:
            chunk = os.read(main_end, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=120)
    os.close(main_end)
    bar = shown.decode(errors="replace")
    assert "8/8" in bar and "img/s" in bar and "<" in bar  # count, rate, ETA (elapsed<remaining)
    assert "embedding: " in bar  # labelled with the phase it counts (Index.add's on_phase)

    # re-runs (nothing to embed) keep these two cheap
    idx = str(tmp_path / "tty-idx")
    piped = run_cli("index", str(photos), "--index", idx, check=True)
    assert piped.stderr == ""
    assert piped.stdout.startswith("added 0, updated 0, removed 0, unchanged 8")
    quiet = run_cli("index", str(photos), "--index", idx, "--quiet", check=True)
    assert (quiet.stdout, quiet.stderr) == ("", "")


def test_commands_that_need_no_model_do_not_import_pytorch(built_index: Path) -> None:
    """`info`, `remove`, unchanged re-runs and `serve`'s start-up stay quick: no PyTorch."""
    probe = (
        "import sys; from lookalike.present.cli import build_parser, main; build_parser(); "
        f"main(['info', '--index', {str(built_index)!r}]); "
        "sys.exit(3 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, "importing the CLI (or running info) loaded PyTorch"
    assert "images    8" in result.stdout
