"""The `vision-synth augment` subcommand: augment an existing COCO dataset. Thin: parse, call
`augment_coco`, report; bad input raises VisionSynthError (the CLI prints one line, exits 2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_augment_parser(subparsers) -> argparse.ArgumentParser:
    """Register `augment` on the `vision-synth` subparsers."""
    from vision_synth.cli import add_output_flags, seed_value

    p = subparsers.add_parser(
        "augment", help="write augmented copies of a COCO dataset (labels re-derived from the masks)",
        description="Augment an existing COCO dataset with an albumentations pipeline (saved with A.save) "
                    "and/or copy-paste. Boxes and areas are re-derived from the transformed masks.")
    p.add_argument("--coco", required=True, help="COCO instances json")
    p.add_argument("--images", help="image folder (default: the json's folder)")
    p.add_argument("--pipeline", help="albumentations pipeline file (YAML or JSON written by A.save)")
    p.add_argument("--spec", help="YAML with the keys of a config's augment: section (pipeline, copies, "
                                  "copy_paste, ...); flags given here override it")
    p.add_argument("--out", required=True, help="output directory (images/, annotations.json)")
    p.add_argument("--copies", type=int, help="augmented copies per image (default 1)")
    p.add_argument("--seed", type=seed_value, default=0, help="copy c of image i is drawn from (seed, i, c) (default 0)")
    p.add_argument("--keep-originals", action="store_true", default=None, help="also write each original image")
    p.add_argument("--min-area", type=int, help="drop instances left with fewer pixels (default 16)")
    p.add_argument("--min-visible-fraction", type=float,
                   help="drop instances left with a smaller share of their pixels (default 0)")
    p.add_argument("--drop-empty", action="store_true", default=None, help="write no image without instances")
    p.add_argument("--copy-paste", action="store_true", help="paste instances of other images (default settings "
                                                           "unless --spec sets copy_paste)")
    p.add_argument("--format", choices=("jpeg", "png"), default="jpeg", help="image format (default jpeg)")
    p.add_argument("--quality", type=int, default=92, help="JPEG quality (default 92)")
    p.add_argument("--segmentation", choices=("rle", "polygon"), default="rle")
    add_output_flags(p)
    p.set_defaults(func=cmd_augment)
    return p


# on the command line originals are opt-in (a config's augment: section keeps them by default)
COMMAND_LINE_DEFAULTS = {"keep_originals": False}


def cmd_augment(args) -> int:
    from vision_synth.augment.dataset import augment_coco
    from vision_synth.augment.spec import load_augment_spec

    overrides = {"pipeline": args.pipeline, "copies": args.copies, "keep_originals": args.keep_originals,
                 "min_area": args.min_area, "min_visible_fraction": args.min_visible_fraction,
                 "drop_empty": args.drop_empty}
    # --copy-paste switches it on with default settings
    defaults = {**COMMAND_LINE_DEFAULTS, **({"copy_paste": {}} if args.copy_paste else {})}
    spec = load_augment_spec(args.spec, defaults, **overrides)
    summary = augment_coco(args.coco, args.images, spec, Path(args.out), seed=args.seed, fmt=args.format,
                           quality=args.quality, segmentation=args.segmentation, overwrite=args.overwrite,
                           show_progress=not args.quiet)
    for line in summary.lines():
        print(line)
    return 0
