"""Run the rare commands as `vision-synth` does (VisionSynthError → one line on stderr, exit 2),
without depending on their registration in cli.py."""

from __future__ import annotations

import argparse

from vision_synth.errors import VisionSynthError
from vision_synth.rare.command import add_rare_parsers


def run(argv: list[str], capsys=None) -> int:
    parser = argparse.ArgumentParser(prog="vision-synth")
    add_rare_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VisionSynthError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
