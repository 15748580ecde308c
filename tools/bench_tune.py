"""Benchmark `vision-synth tune` on real data: nuclei_dev's train_few (one 128×128 fluorescence image,
12 nuclei) augmented by `vision-synth augment`, each setting measured by the utility check on `val`
(40 nuclei, never trained on or augmented), with the gate's detector defaults (fcos_compact, 200 steps).

    python tools/bench_tune.py                     # 12 trials, 2 processes (one trial each at a time)
    python tools/bench_tune.py --steps 100 --trials 6 --processes 1   # a quicker, weaker look

The spec is configs/tune/nuclei.yaml (base configs/tune/augment_nuclei.yaml): copy-paste count and scale,
the number of augmented copies, and the real share of each training batch; 12 trials × 2 seeds, the
best third on 4 seeds, the top one confirmed on 6 fresh seeds. Prints the result line, the table
and the wall time; writes --work/summary.json. The run resumes: rerun the same command after a kill.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NUCLEI = REPO / "tests" / "assets" / "nuclei_dev"


SPEC = REPO / "configs" / "tune" / "nuclei.yaml"


def write_spec(work: Path, data: Path, trials: int, steps: int, seed: int) -> Path:
    """configs/tune/nuclei.yaml with its paths made absolute, `data` for nuclei_dev and the budget
    overrides, written to `work` (the spec of record stays as shipped)."""
    from vision_synth.spec import read_yaml, with_key_paths

    spec = read_yaml(SPEC)
    spec = with_key_paths(spec, {
        "base.config": str(SPEC.parent / spec["base"]["config"]),
        "train.coco": str(data / "train_few" / "annotations.json"), "train.images": str(data / "train_few" / "images"),
        "val.coco": str(data / "val" / "annotations.json"), "val.images": str(data / "val" / "images"),
        "budget.trials": trials, "budget.seed": seed, "utility.steps": steps})
    work.mkdir(parents=True, exist_ok=True)
    path = work / "tune.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=NUCLEI, help="folder with train_few/ and val/ (COCO + images/)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench_tune")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    spec = write_spec(args.work, args.data, args.trials, args.steps, args.seed)
    out = args.work / "out"
    cmd = [sys.executable, "-m", "vision_synth", "tune", str(spec), "--out", str(out), "--quiet"]
    if args.processes > 1:
        cmd += ["--processes", str(args.processes)]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = subprocess.call(cmd, env=env)
    seconds = time.perf_counter() - start
    if code != 0:
        return code
    summary = json.loads((out / "tune.json").read_text())
    timings = json.loads((out / "timings.json").read_text())
    runs = [r for f in (out / ".vision_synth" / "units").glob("*.json") for r in json.loads(f.read_text())["runs"]
            if r["arm"] == "real+synthetic"]
    print(summary["result"])
    print((out / "trials.md").read_text().split("\n\n", 1)[1])
    train_seconds = sum(r["train_seconds"] for r in runs) / max(len(runs), 1)
    print(f"wall time {seconds:.0f} s with {args.processes} processes ({args.trials} trials, {args.steps} steps; "
          f"{len(runs)} mixed-arm runs, {train_seconds:.0f} s of training each; this run {timings['seconds_this_run']} s)")
    result = {"result": summary["result"], "verdict": summary["verdict"], "winner": summary["winner"],
              "confirmation": {k: summary["confirmation"][k] for k in ("seeds", "relative_median_delta", "interval")},
              "trials_tried": summary["trials_tried"], "wall_seconds": round(seconds, 1),
              "processes": args.processes, "steps": args.steps, "mixed_runs": len(runs),
              "train_seconds_per_run": round(train_seconds, 1), "cores": os.cpu_count()}
    (args.work / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
