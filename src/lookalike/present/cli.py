"""The ``lookalike`` command: a thin shell over :class:`lookalike.Index`.

Library errors become ``lookalike: error: <one line>`` on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from lookalike.config import (
    DEFAULT_MODEL,
    EXECUTORS,
    Settings,
    cache_home,
    debug_from_environment,
    load_settings,
)
from lookalike.errors import LookalikeError
from lookalike.files.paths import display_path
from lookalike.index import AddReport, Index
from lookalike.pipeline import open_runner
from lookalike.present.progress import progress_bar
from lookalike.search.filters import Filters
from lookalike.search.query import Query, RegionQuery, SearchResult, TextQuery
from lookalike.search.region import Box
from lookalike.search.spatial import RERANK_HELP
from lookalike.store.whitening import ADAPTED
from lookalike.train.adapt import ADAPT_FROM, adapt_index
from lookalike.train.cli import describe_adaptation

MAX_SKIPPED_SHOWN = 20

# Commands that live beside their feature: each module has ``add_parser(sub, common)`` that
# adds its subparser and sets ``run=function(args, settings) -> exit code``.
FEATURE_COMMANDS: tuple[str, ...] = (
    "lookalike.dupes.cli",
    "lookalike.evaluate.cli",
    "lookalike.explain.cli",
    "lookalike.present.web.cli",
    "lookalike.train.cli",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = show_warning
    try:
        settings = load_settings(
            index=getattr(args, "index", None),
            model=getattr(args, "model", None),
            batch_size=getattr(args, "batch_size", None),
            workers=getattr(args, "workers", None),
            executor=getattr(args, "executor", None),
            ray_address=getattr(args, "ray_address", None),
            actors=getattr(args, "actors", None),
        )
        code: int = args.run(args, settings)
        return code
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lookalike: interrupted (committed work is kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lookalike search ... | head`
        return 0
    except Exception as exc:  # a bug of ours: still one line, never a traceback
        if debug_from_environment():
            raise
        print(
            f"lookalike: internal error: {type(exc).__name__}: {exc} "
            "(set LOOKALIKE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 70


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings from the library (a damaged cache rebuilt, say) as one line on stderr."""
    print(f"lookalike: warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--index",
        metavar="DIR|URL",
        default=argparse.SUPPRESS,
        help="index directory, or milvus://HOST:PORT/COLLECTION for a Milvus collection "
        "(default: $LOOKALIKE_INDEX or ~/.local/share/lookalike/index)",
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bar or summary",
    )
    parser = argparse.ArgumentParser(
        prog="lookalike",
        parents=[common],
        description="Deep-learning image search: find the images that look alike.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "index", parents=[common], help="add folders or files to the index (incremental)"
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--model", default=None, help=f"model for a new index (default: {DEFAULT_MODEL})"
    )
    p.add_argument("--weights", default=None, metavar="FILE", help="explicit weights file")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="decode threads (default: by cores)")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where decoding and embedding run: local (threads here, the default) or ray "
        "(Ray actors, one model each; needs the 'ray' extra)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="with --executor ray: the cluster to run on ('auto': the one 'ray start' left "
        "here); without it a Ray is started for the run and stopped after it. Every node "
        "must see the files at the same paths",
    )
    p.add_argument(
        "--actors",
        type=int,
        default=None,
        help="with --executor ray: actors, one model each (default: one per CPU)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="also remove the indexed files of missing or empty folders (else kept: an "
        "unmounted drive would empty the index)",
    )
    whiten = p.add_mutually_exclusive_group()
    whiten.add_argument(
        "--whiten",
        nargs="?",
        const=0,
        type=int,
        metavar="DIMS",
        help="then learn PCA-whitening from the index's own vectors (optionally keeping DIMS); "
        "measured to hurt category search on clip art, so it is off unless asked for",
    )
    whiten.add_argument(
        "--centre",
        action="store_true",
        help="then centre the vectors on the index's own mean (whitening without rotation): "
        "measured on seeded subsets, +0.006-0.013 MAP@R on clip art and +0.005-0.009 on icons, "
        "copy detection not lower (README: Measuring search quality)",
    )
    whiten.add_argument(
        "--adapt",
        action="store_true",
        help="then adapt the index to its own images now, as `lookalike adapt` does (by "
        f"default it adapts on its own from {ADAPT_FROM} images, and again each time it has "
        "doubled since)",
    )
    whiten.add_argument(
        "--no-adapt",
        action="store_true",
        help="search this index's vectors as the model makes them, from now on: an "
        "adaptation is dropped and never made on its own (`lookalike adapt` makes one again)",
    )
    whiten.add_argument(
        "--no-whiten",
        action="store_true",
        help="drop a learned whitening or adaptation, and adapt no more on its own",
    )
    p.add_argument(
        "--compact",
        action="store_true",
        help="for a new index: keep vectors small (5 bits a dimension on disk, 64-byte codes "
        "in memory from 20,000 images on); measured at a million images: about 1 KB an image, "
        "recall@10 0.90 of the full vectors' top 10, where full vectors search at 0.98 "
        "(see README: Large collections)",
    )
    p.set_defaults(run=run_index)

    p = sub.add_parser(
        "search",
        parents=[common],
        help="find the images most like each query (an image, or words with --text)",
        epilog="Search by words (--text) with a built-in model finds what ImageNet's 1,000 "
        "classes name (animals, objects, vehicles, food, a few places: 'cat', 'espresso', "
        "'dog and ball'), through their WordNet names and kinds; not colours, counts, actions "
        "or most scenes. An index made with --model clip:DIR searches by any words.",
    )
    p.add_argument(
        "queries", nargs="*", metavar="QUERY", help="image file, or - for image bytes on stdin"
    )
    p.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="WORDS",
        help="search by words (repeatable; all in one model load): see below what they can find",
    )
    p.add_argument(
        "--explain-text",
        action="store_true",
        help="show which ImageNet classes the words matched, and with what weight",
    )
    p.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per query per line")
    p.add_argument("--queries-from", metavar="FILE", help="one query path per line (- for stdin)")
    p.add_argument(
        "--exclude-self", action="store_true", help="drop the query itself from its results"
    )
    p.add_argument("--no-rerank", action="store_true", help=RERANK_HELP)
    p.add_argument("--model", default=None, help="must match the index's model")
    p.add_argument("--weights", default=None, metavar="FILE")
    p.add_argument(
        "--orientations",
        action="store_true",
        help="also find turned (90/180/270) and mirrored copies: the query is embedded in its "
        "eight orientations and its centre (for framed or slightly turned copies), and each "
        "result says which transform matched",
    )
    p.add_argument(
        "--region",
        type=parse_box,
        metavar="X,Y,W,H",
        help="search for this region of each query image (original pixels)",
    )
    filters = p.add_argument_group("filters (results must pass all that are given)")
    filters.add_argument("--folder", metavar="DIR", help="only images under this folder")
    filters.add_argument(
        "--taken-after", type=parse_day, metavar="YYYY-MM-DD", help="taken on or after (EXIF)"
    )
    filters.add_argument(
        "--taken-before", type=parse_day, metavar="YYYY-MM-DD", help="taken on or before (EXIF)"
    )
    filters.add_argument("--min-width", type=int, default=0, metavar="PX")
    filters.add_argument("--min-height", type=int, default=0, metavar="PX")
    p.set_defaults(run=run_search)

    p = sub.add_parser("info", parents=[common], help="what the index holds")
    p.add_argument("--skipped", action="store_true", help="list skipped files with reasons")
    p.add_argument(
        "--recall",
        action="store_true",
        help="measure recall@10 of the vector index against exact search (200 stored vectors "
        "as queries; reads every vector once) and keep it for info and /api/stats",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_info)

    p = sub.add_parser("remove", parents=[common], help="drop files or folders from the index")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(run=run_remove)

    p = sub.add_parser(
        "check", parents=[common], help="check the index's files; --repair saves what it can"
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="copy every readable row into a fresh catalogue (the damaged one is kept beside "
        "it); the next 'lookalike index' run re-embeds what was lost",
    )
    p.set_defaults(run=run_check)

    p = sub.add_parser("backup", parents=[common], help="copy the index consistently, live")
    p.add_argument("destination", metavar="DIR", help="a new folder; use it as --index DIR")
    p.set_defaults(run=run_backup)

    p = sub.add_parser("demo", parents=[common], help="index bundled photos and search them")
    p.add_argument("--print-index", action="store_true", help="only print the demo index directory")
    p.set_defaults(run=run_demo)

    for module in FEATURE_COMMANDS:
        importlib.import_module(module).add_parser(sub, common)
    return parser


# commands


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    quiet = getattr(args, "quiet", False)
    model = getattr(args, "model", None)
    bar = progress_bar(quiet)
    with (
        Index.open_or_create(
            settings.index, model, args.weights, settings.model, args.compact
        ) as index,
        open_runner(
            settings.executor,
            settings.workers or None,
            settings.ray_address or None,
            settings.actors or None,
        ) as runner,
        bar as progress,
    ):
        chosen = args.whiten is not None or args.centre or args.adapt or args.no_adapt
        report = index.add(
            args.paths,
            progress=progress,
            batch_size=settings.batch_size,
            runner=runner,
            prune=args.prune,
            adapt=not (chosen or args.no_whiten),
            on_phase=bar.phase,
        )
        learned = ""
        if args.whiten is not None or args.centre:
            learned_from = index.learn_whitening(args.whiten or None, centre_only=args.centre)
            what = "centre" if args.centre else "whitening"
            learned = f"{what} learned from {learned_from} vectors"
        elif args.adapt:
            learned = describe_adaptation(adapt_index(index, progress=progress))
        elif args.no_adapt:
            index.stop_adapting()
        elif args.no_whiten:
            index.drop_whitening()
    if not quiet:
        print_report(report)
        if learned:
            print(learned)
    return 0


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    queries = list(args.queries)
    if args.queries_from:
        queries += read_query_list(args.queries_from)
    if not queries and not args.text:
        raise LookalikeError(
            "no query given (image paths, - for stdin, --queries-from FILE, or --text WORDS)"
        )
    if queries.count("-") > (0 if args.queries_from != "-" else -1) + 1:
        raise LookalikeError("stdin can hold one image query, or the query list, not both")
    filters = Filters(
        args.folder, args.taken_after, args.taken_before, args.min_width, args.min_height
    )
    failed = 0
    with Index.open(settings.index, args.model, args.weights) as index:
        for batch in chunks(queries, settings.batch_size):
            sources = [sys.stdin.buffer.read() if q == "-" else q for q in batch]
            given: list[Query] = (
                [RegionQuery(s, args.region) for s in sources] if args.region else list(sources)
            )
            results = index.search_many(
                given,
                args.k,
                args.exclude_self,
                filters,
                args.orientations,
                rerank=not args.no_rerank,
            )
            failed += print_results(batch, results, args)
        if args.text:
            texts: list[Query] = [TextQuery(t) for t in args.text]
            failed += print_results(
                args.text, index.search_many(texts, args.k, False, filters), args
            )
    return 1 if failed else 0


def print_results(labels: list[str], results: list[SearchResult], args: argparse.Namespace) -> int:
    """Print each query's results (as JSON lines with --json); returns how many failed."""
    for label, result in zip(labels, results, strict=True):
        explain = args.explain_text and result.matched is not None
        if args.json:
            print(format_json(label, result, explain, args.orientations), flush=True)
            continue
        print(format_table(label, result), flush=True)
        if explain and result.matched:
            print("\n".join(f"  {line}" for line in result.matched.describe()))
    return sum(result.error is not None for result in results)


def run_info(args: argparse.Namespace, settings: Settings) -> int:
    with Index.open(settings.index) as index:
        if args.recall:
            index.measure_recall()
        info = index.info()
        skipped = index.skipped() if args.skipped else []
    if args.json:
        out = dict(vars(info))
        if args.skipped:
            out["skipped_files"] = [{"path": p, "reason": r} for p, r in skipped]
        print(json.dumps(out))
        return 0
    print(f"index     {info.directory}\nmodel     {info.model} ({info.model_id}, {info.dim} dims)")
    if info.centred_only:
        print("whitening centred on the index's mean (no rotation), learned from the index")
    elif info.whitening_kind == ADAPTED:
        again = "again as it grows" if info.adapts else "no more on its own (index --no-adapt)"
        print(f"whitening adapted to the index's own images; adapts {again}")
    elif info.whitening_dim:
        print(f"whitening PCA-whitened to {info.whitening_dim} dims, learned from the index")
    elif info.adapts:
        print(f"whitening none yet: an index run adapts it to its images from {ADAPT_FROM} on")
    elif info.model_whitened:
        print("whitening the trained model's own; not adapted on its own (lookalike adapt)")
    elif info.store != "milvus":
        print("whitening none, by choice (index --no-adapt; lookalike adapt makes one)")
    print(f"images    {info.images}\nskipped   {info.skipped}")
    if info.store == "milvus":
        print("disk      kept by the Milvus server")
    else:
        print(f"disk      {info.disk_bytes / 1e6:.1f} MB")
    recall = "" if info.recall_at_10 is None else f", recall@10 {info.recall_at_10:.3f}"
    compact = ", compact" if info.compact else ""
    print(f"vectors   {info.vector_index}{compact}{recall}")
    for path, reason in skipped:
        print(f"skipped {display_path(path)}: {reason}")
    return 0


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    with Index.open(settings.index) as index:
        removed = index.remove(args.paths)
    if not getattr(args, "quiet", False):
        print(f"removed {removed} file(s)")
    return 0


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.store import local_only
    from lookalike.store.check import check_index, repair_index

    report = check_index(local_only(settings.index, "check"))
    if report.ok:
        print(f"{report.catalogue}: ok ({report.images} images)")
        return 0
    for problem in report.problems:
        print(f"{report.catalogue}: {problem}")
    if not args.repair:
        print(f"repair with: lookalike check --repair --index {settings.index}")
        return 1
    repaired = repair_index(Path(settings.index))
    kept, lost = sum(repaired.kept.values()), sum(repaired.lost.values())
    print(
        f"repaired: kept {kept} rows, lost {lost}; {repaired.dropped_images} image(s) will be "
        f"embedded again by the next 'lookalike index' run; the damaged file is "
        f"{repaired.damaged}"
    )
    return 0


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.store import local_only
    from lookalike.store.check import backup_index

    images = backup_index(local_only(settings.index, "backup"), Path(args.destination))
    if not getattr(args, "quiet", False):
        print(f"backed up {images} images to {args.destination}")
    return 0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.demo import write_photos, write_queries

    root = cache_home() / "demo"
    index_dir = str(getattr(args, "index", root / "index"))  # a directory, or milvus://
    if args.print_index:
        print(index_dir)
        return 0
    quiet = getattr(args, "quiet", False)
    photos = root / "photos"
    write_photos(photos)
    pairs = write_queries(photos, root / "queries")
    with Index.open_or_create(index_dir) as index:
        with progress_bar(quiet) as progress:
            report = index.add([photos], progress=progress)
        if quiet:
            return 0
        print(f"demo index: {index_dir} ({len(index)} photos from scikit-image)")
        print_report(report)
        results = index.search_many([q for q, _ in pairs], k=3)
        from lookalike.explain.draw import draw_demo  # PyTorch and matplotlib: only here

        explained, layers = draw_demo(index, *pairs[0], root / "pictures")
    found = 0
    for (query, original), result in zip(pairs, results, strict=True):
        print(format_table(str(query), result))
        found += bool(result.hits) and result.hits[0].path == str(original)
    print(f"\n{found}/{len(pairs)} edited copies found their original first.")
    print(f"Try: lookalike search --index {index_dir} YOUR_IMAGE.jpg")
    print(f"Why the first one matched: {explained}; what the network sees: {layers}")
    return 0 if found == len(pairs) else 1


# helpers


def parse_box(text: str) -> Box:
    try:
        return Box.parse(text)
    except LookalikeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def read_query_list(source: str) -> list[str]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise LookalikeError(f"cannot read query list {source}: {exc.strerror}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def format_json(
    label: str, result: SearchResult, explain: bool = False, orientations: bool = False
) -> str:
    """The public contract: {"query": ..., "results": [{"path", "score", ...}]}; ``explain``
    adds "matched" (the classes a text query's words matched) and "not_understood";
    ``orientations`` adds each result's "transform" (what turns it into the query, or null)."""
    results: list[dict[str, object]] = [
        {"path": h.path, "score": round(h.score, 6), "id": h.id} for h in result.hits
    ]
    if orientations:
        for entry, hit in zip(results, result.hits, strict=True):
            entry["transform"] = hit.transform
    out: dict[str, object] = {"query": label, "results": results}
    if result.error:
        out["error"] = result.error
    if explain and result.matched is not None:
        out["matched"] = [
            {
                "class": m.name,
                "class_id": m.class_id,
                "weight": round(m.weight, 4),
                "words": m.words,
                "how": m.how,
            }
            for m in result.matched.matches
        ]
        out["not_understood"] = list(result.matched.ignored)
    # A file name that is not UTF-8 holds lone surrogates (files.paths): written as \udcXX
    # JSON escapes, which json.loads and os.fsencode turn back into the name's bytes.
    return json.dumps(out, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()


def format_table(label: str, result: SearchResult) -> str:
    label = display_path(label)
    if result.error:
        print(f"lookalike: error: {label}: {result.error}", file=sys.stderr)
        return f"\n{label}\n  (no results: {result.error})"
    lines = [f"\n{label}", "  rank  score  path"]
    lines += [
        f"  {rank:>4}  {h.score:.3f}  {display_path(h.path)}"
        + (f"  ({h.transform})" if h.transform else "")
        for rank, h in enumerate(result.hits, 1)
    ]
    return "\n".join(lines)


def print_report(report: AddReport) -> None:
    print(
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unchanged {report.unchanged}, skipped {len(report.skipped)}"
    )
    if report.classified:
        print(f"classes stored for {report.classified} unchanged file(s), for search by words")
    if report.adaptation:
        print(describe_adaptation(report.adaptation) + " (index --no-adapt: never on its own)")
    if report.not_adapted:
        print(f"not adapted to the collection: {report.not_adapted}")
    for path, reason in report.skipped[:MAX_SKIPPED_SHOWN]:
        print(f"  skipped {display_path(path)}: {reason}")
    if len(report.skipped) > MAX_SKIPPED_SHOWN:
        print(
            f"  ... and {len(report.skipped) - MAX_SKIPPED_SHOWN} more (lookalike info --skipped)"
        )


if __name__ == "__main__":
    sys.exit(main())
