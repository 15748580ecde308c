"""The `vision-synth` command: parse arguments, call the library, report. Bad input exits 2 with one
line naming the file and key or record; no traceback."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from vision_synth import __version__
from vision_synth.errors import VisionSynthError

# errors of a path the user named (a name too long, a folder not writable): one line, exit 2
USER_PATH_ERRORS = (errno.ENAMETOOLONG, errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EISDIR)


def one_line(message: str) -> str:
    """An error message as the one line it must be: line breaks that came in with the input (a name or
    path holding one) shown escaped, as repr would."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def seed_value(text: str) -> int:
    """The argparse type of every --seed: a whole number >= 0 (numpy's seeds are)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is a whole number >= 0")
    return value


def add_output_flags(p: argparse.ArgumentParser, overwrite: bool = True,
                     overwrite_help: str = "replace an existing output; it is replaced only once the new one is whole"
                     ) -> None:
    """The common flags of the commands that write, defined once: --quiet (no progress bars) and
    --overwrite (left out where a command resumes or updates in place, e.g. `defects train`, `check`)."""
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help=overwrite_help)


def _load(args):
    from vision_synth.config import load_config

    return load_config(args.config, num_images=getattr(args, "num_images", None), seed=getattr(args, "seed", None))


def cmd_validate(args) -> int:
    config = _load(args)
    from vision_synth.runner import make_generator

    make_generator(config)  # assets too: backgrounds, sprites, COCO sources, region masks, models
    names = ", ".join(f"{c.id}:{c.name}" for c in config.categories)
    print(f"{args.config}: ok ({config.num_images} images {config.image.width}×{config.image.height}, "
          f"categories {names}, config hash {config.config_hash()})")
    return 0


def without_processes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--processes":
            skip = True
        elif not token.startswith("--processes="):
            out.append(token)
    return out


def cmd_generate(args) -> int:
    from vision_synth.runner import generate, launch

    config = _load(args)  # fail fast, before any process is started
    out = Path(args.out) if args.out else Path("out") / config.name
    if args.processes and args.processes > 1:
        return launch([*without_processes(args.argv), "--out", str(out)], args.processes)
    summary = generate(config, out, overwrite=args.overwrite, show_progress=not args.quiet)
    for line in summary.lines() if summary else []:
        print(line)
    if summary is not None and summary.quality is not None:
        summary.quality.raise_if_failed()  # exit 3: generated, but rejected by the gate
    return 0


def cmd_preview(args) -> int:
    from vision_synth.files import check_new_output
    from vision_synth.preview import render_preview

    root = Path(args.dir)
    annotations = Path(args.annotations) if args.annotations else root / "annotations.json"
    images = Path(args.images) if args.images else root / "images"
    out = Path(args.out) if args.out else root / "previews" / "grid.png"
    check_new_output(out, args.overwrite, "preview")
    print(render_preview(annotations, images, out, args.max_images, show_progress=not args.quiet))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vision-synth", description="Exactly labelled synthetic datasets (COCO).")
    parser.add_argument("--version", action="version", version=f"vision_synth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a COCO dataset from a config")
    p.add_argument("config", help="dataset config YAML (see configs/)")
    p.add_argument("--out", help="output directory (default: out/NAME)")
    p.add_argument("--num-images", type=int, help="override num_images")
    p.add_argument("--seed", type=seed_value, help="override seed")
    add_output_flags(p, overwrite_help="replace a dataset made from another config (the same config resumes)")
    p.add_argument("--processes", type=int, help="run N processes through accelerate (one per GPU, or CPU processes)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("validate", help="check a config and its assets without generating")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("preview", help="draw labels over a grid of a dataset's images into a PNG")
    p.add_argument("dir", help="dataset directory (annotations.json, images/)")
    p.add_argument("--annotations", help="COCO json (default DIR/annotations.json)")
    p.add_argument("--images", help="image folder (default DIR/images)")
    p.add_argument("--out", help="PNG to write (default DIR/previews/grid.png)")
    p.add_argument("--max-images", type=int, default=16)
    add_output_flags(p, overwrite_help="replace an existing PNG (generate draws DIR/previews/grid.png); it is "
                                       "replaced only once the new one is written")
    p.set_defaults(func=cmd_preview)

    from vision_synth.augment.command import add_augment_parser
    from vision_synth.coco.commands import add_dataset_parsers
    from vision_synth.quality.command import add_check_parser
    from vision_synth.rare.command import add_rare_parsers
    from vision_synth.tune.command import add_tune_parser

    add_augment_parser(sub)
    add_dataset_parsers(sub)
    add_rare_parsers(sub)
    add_check_parser(sub)
    add_tune_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except VisionSynthError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in USER_PATH_ERRORS or exc.filename is None:
            raise
        print(f"error: {one_line(f'{exc.filename}: {exc.strerror}')}", file=sys.stderr)  # a path the user gave
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
