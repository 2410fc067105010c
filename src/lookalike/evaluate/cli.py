"""``lookalike eval``: measure a model on a labelled folder, or on copy detection."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from lookalike.config import Settings
from lookalike.errors import LookalikeError
from lookalike.evaluate.metrics import RetrievalReport
from lookalike.evaluate.retrieval import CopyDetectionReport, copy_detection, evaluate_folder
from lookalike.present.progress import progress_bar
from lookalike.search.spatial import RERANK_HELP
from lookalike.train.adapt import ADAPT_FROM

METRICS = ("map_at_r", "r_at_1", "precision_at_10", "map_at_100")
HEADINGS = ("MAP@R", "R@1", "P@10", "mAP@100")


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="measure search quality on a labelled folder (DATASET/<label>/<image>)",
        description="Index DATASET in a temporary index and query every image against all the "
        "others (relevant = same label); or, with --copy-detection, search edited copies of "
        "photos against the originals plus distractors.",
    )
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="folder of <label>/<image> files")
    p.add_argument("--model", default=None, help="model name or model folder (default: settings)")
    p.add_argument("--weights", default=None, metavar="FILE", help="explicit weights file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot",
        metavar="PNG",
        type=Path,
        help="write a precision-recall and worst-queries picture",
    )
    p.add_argument(
        "--worst", type=int, default=5, metavar="N", help="worst labels listed (default 5)"
    )
    p.add_argument(
        "--copy-detection", metavar="PHOTOS_DIR", help="copy-detection evaluation on these photos"
    )
    p.add_argument(
        "--distractors", metavar="DIR", help="more images to index (with --copy-detection)"
    )
    p.add_argument(
        "--orientations",
        action="store_true",
        help="search each copy in its eight orientations and its centre (with --copy-detection)",
    )
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: by cores)")
    p.add_argument("--no-rerank", action="store_true", help=RERANK_HELP)
    learned = p.add_mutually_exclusive_group()
    learned.add_argument(
        "--centre",
        action="store_true",
        help="centre the vectors on the indexed images' own mean (as `index --centre`)",
    )
    learned.add_argument(
        "--adapt",
        action="store_true",
        default=None,
        help="adapt the index to the indexed images before searching (as `lookalike adapt`), "
        f"also below the {ADAPT_FROM} images from which a new index adapts on its own",
    )
    learned.add_argument(
        "--no-adapt",
        dest="adapt",
        action="store_false",
        help="search the vectors as the model makes them (as `index --no-adapt`)",
    )
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    if (args.dataset is None) == (args.copy_detection is None):
        raise LookalikeError("give either DATASET or --copy-detection PHOTOS_DIR")
    if args.copy_detection is None and (args.distractors or args.orientations):
        raise LookalikeError("--distractors and --orientations go with --copy-detection")
    if args.copy_detection is not None and args.plot:
        raise LookalikeError("--plot is for a labelled DATASET")
    quiet = getattr(args, "quiet", False) or args.json
    with progress_bar(quiet) as progress:
        if args.copy_detection is not None:
            copies = copy_detection(
                args.copy_detection,
                args.distractors,
                model=settings.model,
                weights=args.weights,
                progress=progress,
                workers=settings.workers or None,
                orientations=args.orientations,
                rerank=not args.no_rerank,
                centre=args.centre,
                adapt=args.adapt,
            )
            print(json.dumps(copies.as_dict()) if args.json else format_copies(copies))
            return 0
        evaluation = evaluate_folder(
            args.dataset,
            model=settings.model,
            weights=args.weights,
            progress=progress,
            workers=settings.workers or None,
            rerank=not args.no_rerank,
            centre=args.centre,
            adapt=args.adapt,
        )
    report = evaluation.report
    if args.plot:
        from lookalike.evaluate.plot import plot_evaluation  # matplotlib: only when asked

        plot_evaluation(evaluation, args.plot)
    if args.json:
        out = report.as_dict()
        out["skipped"] = [{"path": p, "reason": r} for p, r in evaluation.skipped]
        print(json.dumps(_finite(out)))
    else:
        print(format_report(report, args.worst, len(evaluation.skipped)))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def format_report(report: RetrievalReport, worst: int, skipped: int) -> str:
    lines = [
        f"{report.queries} queries ({report.excluded} left out: only image of their label"
        + (f"; {skipped} files skipped" if skipped else "")
        + ")",
        "           " + "  ".join(f"{h:>7}" for h in HEADINGS),
        "overall    " + "  ".join(f"{getattr(report, m):7.3f}" for m in METRICS),
        f"worst {min(worst, len(report.per_label))} labels:",
    ]
    for label, scores in report.worst_labels(worst):
        lines.append(
            "  "
            + "  ".join(f"{scores[m]:7.3f}" for m in METRICS)
            + f"  {label} ({int(scores['images'])} images)"
        )
    return "\n".join(lines)


def format_copies(report: CopyDetectionReport) -> str:
    ks = list(report.overall)
    lines = [
        f"{report.queries} edited copies of {report.originals} photos, searched among "
        f"{report.originals} originals + {report.distractors} distractors",
        f"{'edit':22}" + "".join(f"{'recall@' + str(k):>11}" for k in ks),
    ]
    for edit, recall in report.recall.items():
        lines.append(f"{edit:22}" + "".join(f"{recall[k]:11.3f}" for k in ks))
    lines.append(f"{'all':22}" + "".join(f"{report.overall[k]:11.3f}" for k in ks))
    return "\n".join(lines)


def _finite(value: object) -> object:
    """JSON has no NaN: labels with a single image get null metrics."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
