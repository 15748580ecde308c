"""Run the rare commands through the real `vision-synth` entry point."""

from __future__ import annotations

from vision_synth.cli import main


def run(argv: list[str], capsys=None) -> int:
    return main(argv)
