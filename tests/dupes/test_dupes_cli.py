"""`lookalike dupes` end to end: the real command on real photos and their copies."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from lookalike import Index

Cli = Callable[..., subprocess.CompletedProcess[str]]


def groups_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def names(group: dict[str, object]) -> tuple[str, set[str]]:
    duplicates = group["duplicates"]
    assert isinstance(duplicates, list)
    return Path(str(group["keep"])).name, {Path(d["path"]).name for d in duplicates}


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_json_lines_keep_the_original_and_list_its_copies(
    collection: Path, collection_index: Path, run_cli: Cli
) -> None:
    result = run_cli("dupes", "--index", str(collection_index), "--json", check=True)
    groups = groups_of(result)
    found = dict(names(g) for g in groups)
    # Turned and mirrored copies are close enough as they are here (0.79, 0.95): only
    # --orientations names their transform.
    assert found == {
        "coffee.jpg": {"coffee-q70.jpg", "coffee-half.jpg", "coffee-rot90.jpg"},
        "rocket.jpg": {"rocket-q70.jpg", "rocket-flip.jpg"},
        "chelsea.jpg": {"chelsea-half.jpg"},
    }
    with Index.open(collection_index) as index:
        edited = index.band_thresholds()["edited"]
    for group in groups:
        assert set(group) == {"keep", "duplicates"}
        assert Path(str(group["keep"])).is_absolute()
        for d in group["duplicates"]:  # type: ignore[attr-defined]
            assert set(d) == {"path", "score", "band", "transform"}
            assert edited <= d["score"] <= 1.0 and d["band"] in ("identical", "edited")
            assert d["transform"] is None and Path(d["path"]).is_absolute()


def test_orientations_find_the_turned_copy_and_name_each_transform(
    collection_index: Path, run_cli: Cli
) -> None:
    result = run_cli(
        "dupes", "--index", str(collection_index), "--json", "--orientations", check=True
    )
    copies = {
        Path(d["path"]).name: d
        for g in groups_of(result)
        for d in g["duplicates"]  # type: ignore[attr-defined]
    }
    assert copies["coffee-rot90.jpg"]["transform"] == "rot90"
    assert (
        copies["coffee-rot90.jpg"]["band"] == "edited"
        and copies["coffee-rot90.jpg"]["score"] > 0.95
    )
    assert copies["rocket-flip.jpg"]["transform"] == "flip"
    assert copies["rocket-q70.jpg"]["transform"] is None
    assert copies["rocket-q70.jpg"]["band"] == "identical"


def test_human_and_csv_output_show_the_keeper_first_with_its_reason(
    collection_index: Path, run_cli: Cli
) -> None:
    text = run_cli("dupes", "--index", str(collection_index), check=True).stdout
    block = text.split("group ")[1]
    assert (
        "keep  " in block
        and "kept for: largest " in block
        and block.index("keep") < block.index("copy")
    )
    assert "3 group(s), 6 copies" in text
    rows = list(
        csv.DictReader(
            io.StringIO(
                run_cli("dupes", "--index", str(collection_index), "--csv", check=True).stdout
            )
        )
    )
    assert next(r["role"] for r in rows if r["group"] == "1") == "keep"
    assert {r["role"] for r in rows} == {"keep", "copy"} and len(rows) == 9
    assert all(r["width"] and r["bytes"] for r in rows)


def test_a_threshold_or_band_changes_what_is_grouped(collection_index: Path, run_cli: Cli) -> None:
    strict = groups_of(
        run_cli(
            "dupes", "--index", str(collection_index), "--json", "--threshold", "0.99", check=True
        )
    )
    assert len(strict) < 3
    identical = groups_of(
        run_cli(
            "dupes", "--index", str(collection_index), "--json", "--band", "identical", check=True
        )
    )
    assert all(d["band"] == "identical" for g in identical for d in g["duplicates"])  # type: ignore[attr-defined]


def test_bad_input_is_one_line_and_changes_nothing(
    collection_index: Path, run_cli: Cli, tmp_path: Path
) -> None:
    for args in (
        ["--threshold", "2"],
        ["--undo", str(tmp_path / "nothing.json")],
        ["--apply"],
        ["--not-duplicates", "/not/indexed.jpg", "/nor/this.jpg"],
    ):
        failed = run_cli("dupes", "--index", str(collection_index), *args)
        assert failed.returncode == 1, (args, failed.stderr)
        assert failed.stderr.startswith("lookalike: error:") and failed.stderr.count("\n") == 1


def test_not_duplicates_is_remembered_by_later_scans(
    own_collection: tuple[Path, Path], run_cli: Cli
) -> None:
    root, index = own_collection
    before = dict(
        names(g) for g in groups_of(run_cli("dupes", "--index", str(index), "--json", check=True))
    )
    assert "chelsea.jpg" in before
    run_cli(
        "dupes",
        "--index",
        str(index),
        "--not-duplicates",
        str(root / "originals/chelsea.jpg"),
        str(root / "copies/chelsea-half.jpg"),
        check=True,
    )
    after = dict(
        names(g) for g in groups_of(run_cli("dupes", "--index", str(index), "--json", check=True))
    )
    assert "chelsea.jpg" not in after and after == {
        k: v for k, v in before.items() if k != "chelsea.jpg"
    }


def test_move_is_a_dry_run_then_moves_with_a_journal_and_undo_restores_the_tree(
    own_collection: tuple[Path, Path], run_cli: Cli, tmp_path: Path
) -> None:
    root, index = own_collection
    review = tmp_path / "review"
    original_tree = tree(root)
    dry = run_cli("dupes", "--index", str(index), "--move-to", str(review), check=True)
    assert "dry run: nothing moved" in dry.stdout and dry.stdout.count("would move") == 6
    assert tree(root) == original_tree and not review.exists()

    moved = run_cli("dupes", "--index", str(index), "--move-to", str(review), "--apply", check=True)
    journal = next(
        line.split(" ", 1)[1] for line in moved.stdout.splitlines() if line.startswith("journal ")
    )
    assert Path(journal).parent == review
    # Relative paths kept under the destination; keepers stay; nothing deleted.
    assert sorted(tree(review)) == sorted(
        [
            f"copies/{n}"
            for n in (
                "coffee-q70.jpg",
                "coffee-half.jpg",
                "coffee-rot90.jpg",
                "rocket-q70.jpg",
                "rocket-flip.jpg",
                "chelsea-half.jpg",
            )
        ]
        + [Path(journal).name]
    )
    assert {
        **tree(root),
        **{k: v for k, v in tree(review).items() if k.startswith("copies/")},
    } == original_tree
    # The index followed: the copies are known at their new paths, not embedded again.
    with Index.open(index) as opened:
        paths = {r.path for r in opened.records()}
        assert str(review / "copies/coffee-q70.jpg") in paths
        assert str(root / "copies/coffee-q70.jpg") not in paths
        hits = opened.search(str(review / "copies/coffee-q70.jpg"), k=2)
        # itself at its new path, then the original or its other copy (which of the two
        # comes first depends on the int8 kernels of the CPU)
        assert hits[0].path == str(review / "copies/coffee-q70.jpg")
        assert Path(hits[1].path).name in {"coffee.jpg", "coffee-half.jpg"}
    # Moved copies are still copies; --exclude (as --move-to does) leaves them out.
    rescan = groups_of(run_cli("dupes", "--index", str(index), "--json", check=True))
    assert len(rescan) == 3
    left = run_cli("dupes", "--index", str(index), "--json", "--exclude", str(review), check=True)
    assert groups_of(left) == []
    again = run_cli("index", str(review), "--index", str(index), check=True)
    assert "added 0, updated 0" in again.stdout

    undone = run_cli("dupes", "--index", str(index), "--undo", journal, check=True)
    assert "restored 6 file(s)" in undone.stdout
    assert tree(root) == original_tree
    assert sorted(tree(review)) == [Path(journal).name]  # the folders it made are gone
    with Index.open(index) as opened:
        assert {r.path for r in opened.records()} == {str(p) for p in root.rglob("*.jpg")}
    twice = run_cli("dupes", "--index", str(index), "--undo", journal)
    assert twice.returncode == 1 and "undone already" in twice.stderr
