"""``lookalike dupes``: list groups of copies, record verdicts, move copies away and back."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence

from lookalike.config import Settings
from lookalike.dupes.bands import BANDS, DEFAULT_BAND, describe_thresholds
from lookalike.dupes.find import DuplicateGroup, resolve_threshold
from lookalike.errors import LookalikeError
from lookalike.files.paths import display_path
from lookalike.index import Index
from lookalike.store import ImageRecord

CSV_COLUMNS = (
    "group",
    "role",
    "path",
    "score",
    "band",
    "transform",
    "width",
    "height",
    "bytes",
    "taken_at",
    "reason",
)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "dupes",
        parents=[common],
        help="find copies of the same picture, suggest which to keep, move the others",
        description="Group the indexed images that are copies of each other, from the index's "
        "own nearest-neighbour search; every two images of a group are at least the threshold "
        f"alike (cosine score; each model has its own bands: {describe_thresholds()}; other "
        "models have mobilenet_v2's). The suggested keeper comes first.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--band",
        choices=BANDS,
        default=None,
        help=f"group copies of this band or closer (default: {DEFAULT_BAND})",
    )
    which.add_argument("--threshold", type=float, metavar="T", help="group pairs scoring >= T")
    p.add_argument(
        "--orientations",
        action="store_true",
        help="also find turned (90/180/270) and mirrored copies, naming the transform",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per group per line")
    out.add_argument("--csv", action="store_true", help="one CSV row per image")
    p.add_argument(
        "--prefer-folder",
        action="append",
        default=[],
        metavar="DIR",
        help="keep the copy under this folder (repeatable, first wins)",
    )
    p.add_argument(
        "--prefer-format",
        action="append",
        default=[],
        metavar="FMT",
        help="keep a copy of this format (repeatable: e.g. raw, heic, png before jpeg)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="DIR",
        help="leave out the images under DIR (repeatable; --move-to leaves out its own DIR)",
    )
    p.add_argument("-k", type=int, default=10, help="neighbours asked for per image (default 10)")
    act = p.add_mutually_exclusive_group()
    act.add_argument(
        "--not-duplicates",
        nargs="+",
        metavar="FILE",
        help="record that these files are not duplicates: later scans keep them apart",
    )
    act.add_argument(
        "--move-to",
        metavar="DIR",
        help="move every copy but the keepers under DIR, keeping their relative paths "
        "(a dry run that shows the plan, unless --apply)",
    )
    act.add_argument("--undo", metavar="JOURNAL", help="put back the files a journal moved")
    p.add_argument("--apply", action="store_true", help="with --move-to: really move the files")
    p.set_defaults(run=run_dupes)


def run_dupes(args: argparse.Namespace, settings: Settings) -> int:
    if args.apply and not args.move_to:
        raise LookalikeError("--apply goes with --move-to DIR")
    resolve_threshold(args.band, args.threshold)  # a bad threshold fails before the index opens
    quiet = getattr(args, "quiet", False)
    with Index.open(settings.index) as index:
        bands = index.band_thresholds()
        if args.not_duplicates:
            count = index.mark_not_duplicates(args.not_duplicates)
            if not quiet:
                print(f"recorded: these {count} files are not duplicates of each other")
            return 0
        if args.undo:
            report = index.undo_moves(args.undo)
            for problem in report.problems:
                print(f"lookalike: warning: {display_path(problem)}", file=sys.stderr)
            if not quiet:
                print(f"restored {report.restored} file(s)")
            return 1 if report.problems else 0
        groups = index.duplicates(
            args.band,
            args.threshold,
            args.orientations,
            args.prefer_folder,
            args.prefer_format,
            args.k,
            [*args.exclude, *([args.move_to] if args.move_to else [])],
        )
        if args.move_to:
            return move_copies(index, groups, args.move_to, args.apply, quiet)
    if args.json:
        for group in groups:
            print(format_json(group), flush=True)
    elif args.csv:
        write_csv(groups)
    else:
        for number, group in enumerate(groups, 1):
            print(format_group(number, group), flush=True)
        if not quiet:
            copies = sum(len(g.duplicates) for g in groups)
            limit = resolve_threshold(args.band, args.threshold, bands)
            print(
                f"\n{len(groups)} group(s), {copies} copies beside their keepers "
                f"(pairs scoring >= {limit:.2f})"
            )
    return 0


def move_copies(
    index: Index, groups: Sequence[DuplicateGroup], destination: str, apply: bool, quiet: bool
) -> int:
    paths = [d.path for g in groups for d in g.duplicates]
    if not paths:
        print("no copies to move")
        return 0
    plan = index.plan_moves(paths, destination)
    for problem in plan.problems:
        print(f"lookalike: error: {display_path(problem)}", file=sys.stderr)
    if plan.problems:
        return 1
    if not apply:
        for move in plan.moves:
            print(f"would move {display_path(move.source)} -> {display_path(move.target)}")
        print(f"dry run: nothing moved; add --apply to move these {len(plan.moves)} file(s)")
        return 0
    journal = index.move(plan)
    if not quiet:
        print(f"moved {len(plan.moves)} file(s) under {display_path(plan.destination)}")
        print(f"journal {display_path(str(journal))}")
        print(
            f"undo with: lookalike dupes --undo {display_path(str(journal))} "
            f"--index {display_path(str(index.directory))}"
        )
    return 0


def format_json(group: DuplicateGroup) -> str:
    """The public contract: {"keep": path, "duplicates": [{"path", "score", "band",
    "transform"}]}, one line per group."""
    out = {
        "keep": group.keep.path,
        "duplicates": [
            {"path": d.path, "score": round(d.score, 6), "band": d.band, "transform": d.transform}
            for d in group.duplicates
        ],
    }
    # A file name that is not UTF-8 holds lone surrogates: written as \udcXX escapes, as in
    # `search --json`.
    return json.dumps(out, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()


def describe(record: ImageRecord) -> str:
    """Resolution, size and capture time, for people."""
    size = f"{record.width}x{record.height}" if record.width else "?x?"
    taken = record.taken_at.replace("T", " ") if record.taken_at else "no date"
    return f"{size}, {record.size / 1e6:.2f} MB, {taken}"


def format_group(number: int, group: DuplicateGroup) -> str:
    lines = [f"\ngroup {number}: {len(group.records)} images"]
    lines.append(f"  keep  {display_path(group.keep.path)}")
    lines.append(f"        {describe(group.keep)}; kept for: {group.reason}")
    for d in group.duplicates:
        turned = f", {d.transform}" if d.transform else ""
        lines.append(f"  copy  {display_path(d.path)}")
        lines.append(f"        {describe(d.record)}; {d.score:.3f} {d.band}{turned}")
    return "\n".join(lines)


def write_csv(groups: Sequence[DuplicateGroup]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for number, group in enumerate(groups, 1):
        rows = [(group.keep, "keep", "", "", "", group.reason)]
        rows += [
            (d.record, "copy", f"{d.score:.6f}", d.band, d.transform or "", "")
            for d in group.duplicates
        ]
        for record, role, score, band, transform, reason in rows:
            writer.writerow(
                (
                    number,
                    role,
                    display_path(record.path),
                    score,
                    band,
                    transform,
                    record.width or "",
                    record.height or "",
                    record.size,
                    record.taken_at or "",
                    reason,
                )
            )
