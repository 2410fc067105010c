"""``lookalike search --text``: the JSON line contract with the words as ``query``, several
texts in one call, ``--explain-text``, filters, and no PyTorch imported to answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_several_texts_one_json_line_each(built_index: Path, run_cli: RunCli) -> None:
    result = run_cli(
        "search",
        "--index",
        str(built_index),
        "--json",
        "-k",
        "2",
        "--text",
        "cat",
        "--text",
        "espresso",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["cat", "espresso"]
    assert [Path(line["results"][0]["path"]).name for line in lines] == [
        "chelsea.jpg",
        "coffee.jpg",
    ]
    assert all(set(line) == {"query", "results"} for line in lines)  # the image queries' shape
    assert set(lines[0]["results"][0]) == {"path", "score", "id"}


def test_explain_text_says_what_the_words_matched(built_index: Path, run_cli: RunCli) -> None:
    table = run_cli(
        "search", "--index", str(built_index), "-k", "1", "--text", "red car", "--explain-text"
    )
    assert table.returncode == 0, table.stderr
    assert 'matched "car" (a kind of car): ambulance 1.00' in table.stdout
    assert 'not understood: "red"' in table.stdout
    line = json.loads(
        run_cli(
            "search",
            "--index",
            str(built_index),
            "--json",
            "--text",
            "cat on a sofa",
            "--explain-text",
        ).stdout
    )
    assert {m["words"] for m in line["matched"]} == {"cat", "sofa"} and line["not_understood"] == []
    assert {"class", "class_id", "weight", "words", "how"} == set(line["matched"][0])


def test_filters_apply_to_words(
    built_index: Path, photo_library: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli(
        "search", "--index", str(built_index), "--json", "--text", "cat", "--folder", str(tmp_path)
    )
    assert result.returncode == 0 and json.loads(result.stdout)["results"] == []


def test_no_words_search_without_classes_is_one_error(
    photo_library: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    index = str(tmp_path / "index")
    made = run_cli(
        "index", str(photo_library / "coins.jpg"), "--index", index, "--model", "seed_cnn"
    )
    assert made.returncode == 0, made.stderr
    result = run_cli("search", "--index", index, "--json", "--text", "cat")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot search by words" in json.loads(result.stdout)["error"]


def test_text_search_imports_no_pytorch(built_index: Path) -> None:
    args = ["search", "--index", str(built_index), "--json", "-k", "1", "--text", "tripod"]
    code = (
        "import sys\nfrom lookalike.present.cli import main\n"
        f"code = main({args!r})\nsys.exit(3 if 'torch' in sys.modules else code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert Path(json.loads(result.stdout)["results"][0]["path"]).name == "camera.jpg"
