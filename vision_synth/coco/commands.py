"""The dataset commands of `vision-synth`: export, split, merge. Thin: parse, call the library, report.
Wired into cli.py with `add_dataset_parsers(sub)`; bad input raises VisionSynthError (exit 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vision_synth.errors import VisionSynthError


def cmd_export(args) -> int:
    from vision_synth.coco.export import export_dataset

    if args.format != "coco" and args.segmentation is not None:
        raise VisionSynthError("--segmentation applies to --format coco only")
    if args.format == "yolo" and args.polygons is not None:
        raise VisionSynthError("--polygons applies to --format yolo-seg or coco only")
    if args.format == "coco" and args.segmentation == "rle-uncompressed" and args.polygons is not None:
        raise VisionSynthError("--polygons applies to --segmentation polygon only")
    result = export_dataset(Path(args.dir), Path(args.out), args.format, polygons=args.polygons or "all",
                            segmentation=args.segmentation or "polygon", link=args.link, overwrite=args.overwrite,
                            show_progress=not args.quiet)
    for line in result.lines():
        print(line)
    return 0


def cmd_split(args) -> int:
    from vision_synth.coco.split import split_dataset

    result = split_dataset(Path(args.dir), args.ratios, by_class=args.by_class, seed=args.seed,
                           allow_synthetic_eval=args.allow_synthetic_eval, overwrite=args.overwrite)
    for line in result.lines():
        print(line)
    return 0


def cmd_merge(args) -> int:
    from vision_synth.coco.merge import merge_datasets

    result = merge_datasets([Path(d) for d in args.dirs], Path(args.out), link=args.link, overwrite=args.overwrite,
                            show_progress=not args.quiet)
    for line in result.lines():
        print(line)
    return 0


def _add_link(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--link", dest="link", action="store_const", const="hard",
                       help="hard-link the images instead of copying them (same file system)")
    group.add_argument("--symlink", dest="link", action="store_const", const="sym",
                       help="symlink the images (absolute targets) instead of copying them")


def add_dataset_parsers(sub) -> None:
    """Register export, split and merge on the `vision-synth` subparsers."""
    from vision_synth.cli import add_output_flags, seed_value

    p = sub.add_parser("export", help="export a dataset as YOLO, YOLO-seg or COCO (polygons / uncompressed RLE)")
    p.add_argument("dir", help="dataset folder (annotations.json, images/, optional split files)")
    p.add_argument("--format", required=True, choices=["yolo", "yolo-seg", "coco"])
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--polygons", choices=["largest", "all"],
                   help="parts of a split mask to keep as polygons (default all; yolo-seg joins them)")
    p.add_argument("--segmentation", choices=["polygon", "rle-uncompressed"],
                   help="COCO segmentation form (default polygon)")
    _add_link(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("split", help="write annotations_train/_val/_test.json beside annotations.json")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--ratios", default="0.8,0.1,0.1", help="train,val[,test] fractions summing to 1")
    p.add_argument("--by-class", action="store_true", help="stratify so each class follows the ratios")
    p.add_argument("--seed", type=seed_value, default=0)
    p.add_argument("--allow-synthetic-eval", action="store_true",
                   help="let images flagged synthetic go to val/test (default: train only)")
    add_output_flags(p, overwrite_help="replace the split files of an earlier split; they are replaced only "
                                       "once every new one is written")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("merge", help="merge datasets (categories matched by name, ids renumbered)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="dataset folders, in order")
    p.add_argument("--out", required=True, help="new output folder")
    _add_link(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_merge)
