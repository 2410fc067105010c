"""``lookalike explain``, ``lookalike layers`` and ``lookalike course``: see what the CNN sees."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lookalike.config import Settings
from lookalike.files.paths import display_path


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from lookalike.present.cli import parse_box  # the CLI imports this module to build itself

    p = sub.add_parser(
        "explain",
        parents=[common],
        help="why two images matched: heatmaps of the regions that made the score",
        description="Decompose the similarity score of RESULT for QUERY over pairs of "
        "feature-map cells: each image's heatmap shows where its share of the score lies, "
        "and the strongest cell pairs say which regions matched which.",
    )
    p.add_argument("query", metavar="QUERY", help="image file, or an indexed image's id")
    p.add_argument("result", metavar="RESULT", help="an indexed image's file or id")
    p.add_argument(
        "--region", type=parse_box, metavar="X,Y,W,H", help="explain a search for this region"
    )
    p.add_argument("-o", "--out", type=Path, metavar="PNG", help="draw the picture into this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--pairs", type=int, default=10, metavar="N", help="cell pairs listed (10)")
    p.set_defaults(run=run_explain)

    p = sub.add_parser(
        "layers",
        parents=[common],
        help="what the network sees: its first filters and each stage's feature maps",
    )
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("--model", default=None, help="model name or model folder (default: settings)")
    p.add_argument("--weights", default=None, metavar="FILE", help="explicit weights file")
    p.add_argument("--channels", type=int, default=4, metavar="N", help="maps per stage (4)")
    p.add_argument("-o", "--out", type=Path, metavar="PNG", help="draw the picture into this file")
    p.set_defaults(run=run_layers)

    p = sub.add_parser(
        "course",
        parents=[common],
        help="the course's worked examples (convolution, padding, pooling, depth, training), "
        "computed by the real layers",
    )
    p.add_argument("-o", "--out", type=Path, metavar="DIR", help="also draw each into DIR")
    p.set_defaults(run=run_course)


def run_explain(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.explain.similarity import explain_match
    from lookalike.index import Index

    if args.pairs < 0:
        from lookalike.errors import LookalikeError

        raise LookalikeError(f"--pairs must be at least 0, got {args.pairs}")
    with Index.open(settings.index) as index:
        explanation = explain_match(
            index, image_reference(args.query), image_reference(args.result), args.region
        )
    if args.out:
        from lookalike.explain.draw import draw_explanation

        draw_explanation(explanation, args.out)
    if args.json:
        print(json.dumps(explanation.as_dict(args.pairs)))
        return 0
    print(f"score {explanation.score:.4f}")
    for role, side in (("query ", explanation.query), ("result", explanation.result)):
        rows, cols = side.heat.shape
        where = f" (id {side.image_id})" if side.image_id is not None else ""
        if side.region:
            box = side.region
            where += f", region {box.x},{box.y} {box.w}x{box.h}"
        print(f"{role} {side.label}{where}: {rows}x{cols} cells")
    print(f"maps sum to {explanation.total:.4f}")
    pairs = explanation.top_pairs(args.pairs)
    if pairs:
        print("strongest cell pairs (query row,col -> result row,col: share of the score)")
    for pair in pairs:
        (qr, qc), (rr, rc) = pair.query, pair.result
        print(f"  {qr},{qc} -> {rr},{rc}: {pair.share:.5f}")
    for note in explanation.notes:
        print(f"note: {note}")
    if args.out:
        print(f"picture written to {display_path(str(args.out))}")
    return 0


def run_layers(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.decode.image import decode_image
    from lookalike.embed.registry import create_embedder
    from lookalike.errors import LookalikeError
    from lookalike.explain.layers import layer_views

    if args.channels < 1:
        raise LookalikeError(f"--channels must be at least 1, got {args.channels}")
    embedder = create_embedder(settings.model, args.weights, runtime="torch")
    image = decode_image(args.image, max_side=embedder.image_size).image
    views = layer_views(embedder, image, args.channels)
    size = views.input.shape[0]
    n, _, k, _ = views.filters.shape
    print(f"{views.model_id}: input 3 x {size} x {size}")
    print(f"first convolution: {n} filters of 3 x {k} x {k}, stride {views.filter_stride}")
    for stage in views.stages:
        c, h, w = stage.shape
        print(
            f"{stage.name} {stage.kind}: {c} x {h} x {w} (stride {stage.stride}), "
            f"strongest channels {', '.join(map(str, stage.channels))}"
        )
    if args.out:
        from lookalike.explain.draw import draw_layers

        draw_layers(views, args.out)
        print(f"picture written to {display_path(str(args.out))}")
    return 0


def run_course(args: argparse.Namespace, settings: Settings) -> int:
    from lookalike.explain.course import course_examples, format_course

    examples = course_examples()
    print(format_course(examples))
    if args.out:
        from lookalike.explain.draw import draw_course

        written = draw_course(examples, args.out)
        print(f"\n{len(written)} pictures written to {display_path(str(args.out))}")
    return 0


def image_reference(text: str) -> int | str:
    """A command-line image: an existing file by that name, else digits as an indexed id,
    else the path (which then fails with its own message)."""
    if not Path(text).exists() and text.isdigit():
        return int(text)
    return text
