"""`vision-synth tune SPEC --out DIR`. Thin: parse, call `run_tune`, report; bad input raises
VisionSynthError (the CLI prints one line and exits 2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_tune_parser(subparsers) -> argparse.ArgumentParser:
    """Register `tune` on the `vision-synth` subparsers."""
    from vision_synth.cli import add_output_flags

    p = subparsers.add_parser(
        "tune", help="search generation settings by measuring their utility on your real data",
        description="Make a candidate dataset for each setting of a search space over a base (augment spec, "
                    "rare policy or dataset config), measure each with the utility check (paired seeds, real "
                    "vs real+synthetic, scored on real val), keep the best by successive halving, and confirm "
                    "the top one on fresh seeds. Writes trials.jsonl, trials.md, tune.json, best.yaml (only "
                    "when the confirmation says it helps), report.html, tune_card.md. Resumes a killed run.")
    p.add_argument("spec", help="tune spec YAML (base, train, val, space, budget, utility)")
    p.add_argument("--out", required=True, help="output folder (the same folder resumes the same spec)")
    p.add_argument("--processes", type=int, help="run N processes through accelerate (trials split between them)")
    add_output_flags(p, overwrite_help="replace a folder of another search (the same spec resumes)")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args) -> int:
    from vision_synth.tune.search import run_tune
    from vision_synth.tune.spec import load_tune_spec

    spec = load_tune_spec(args.spec)  # fail fast, before any process is started
    if args.processes and args.processes > 1:
        from vision_synth.cli import without_processes
        from vision_synth.runner import launch

        return launch(without_processes(args.argv), args.processes)
    import os
    import sys

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and cores > spec.threads and not args.quiet:
        print(f"note: one process training with {spec.threads} CPU thread(s) on {cores} cores; --processes "
              f"{max(cores // spec.threads, 2)} gives the same results sooner", file=sys.stderr)
    result = run_tune(spec, Path(args.out), overwrite=args.overwrite, progress=not args.quiet)
    for line in result.lines() if result is not None else []:
        print(line)
    return 0
