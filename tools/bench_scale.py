"""Scale-out benchmark: images/s with 1 and 2 processes (accelerate), and peak memory of a run of
2,000 versus 20,000 images (the streaming merge must keep it flat). All figures from one run.

The rate is the command's own (`generated N images in S s`): from the start of the run to the
published dataset, merge and card included. With 2 processes it includes forming the process
group (importing torch and accelerate, the rendezvous; about 2 s, which one process never pays),
so the efficiency is printed with it and without it.

Efficiency is rate(2 processes) / (2 × rate(1 process on 1 CPU)): the one-process run is pinned to
one CPU (os.sched_setaffinity), as each of the 2 processes has one (the runner gives each process
one OpenCV thread). Unpinned, one process spreads OpenCV's resizes and warps over the second CPU
too; that rate is printed beside it (what one process gets from the whole machine), and so is one
unpinned process with one OpenCV thread beside the pinned runs' median: where it is clearly faster,
the kernel's work on the other CPU (writing the files) helps one process, and the pinned baseline
flatters the efficiency (its efficiency against that rate is printed too). The 1- and 2-process runs
alternate for --rounds rounds, in the order 1-2, 2-1, 1-2, ... (so that a machine whose speed
drifts during the run, as shared ones do, is not read as a loss or a gain of scaling), and the
median efficiency is the figure. Beside it: the efficiency
over the whole commands (from starting `python` to its exit), which also counts Python's start, the
accelerate launcher's own import of torch and the workers' start: what a user waits for.

Usage:
  python tools/bench_scale.py                      # throughput on configs/bench_512.yaml, 1 vs 2 processes (10,000 images, 4 rounds: ~8 min)
  python tools/bench_scale.py --images 3000 --rounds 5   # a shorter run, where forming the process group weighs more
  python tools/bench_scale.py --memory             # peak RSS, 2,000 vs 20,000 images (64x64)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run one generate in a child and report its own peak RSS (children of it: the accelerate workers).
CHILD = """
import os, resource, sys
if os.environ.get("BENCH_CV2_THREADS"):
    import cv2
    cv2.setNumThreads(int(os.environ["BENCH_CV2_THREADS"]))
from vision_synth.cli import main
code = main(sys.argv[1:])
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"PEAK_RSS_KB {max(own, kids)}")
raise SystemExit(code)
"""


@dataclass(frozen=True)
class Run:
    rate: float  # images/s, the command's own figure
    steady: float  # images/s without forming the process group
    whole: float  # images/s over the whole command: Python's start, the launcher, the workers' start
    peak_kib: int  # peak RSS


def run(args: list[str], cpus: set[int] | None = None, cv2_threads: int | None = None) -> Run:
    """One command, run on the CPUs `cpus` (default: all this process may use) with `cv2_threads`
    OpenCV threads (default: OpenCV's own choice, one per CPU)."""
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    env = {**os.environ, **({"BENCH_CV2_THREADS": str(cv2_threads)} if cv2_threads else {})}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, preexec_fn=pin,
                          env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    done = re.search(r"generated (\d+) images in ([\d.]+) s \(([\d.]+) images/s\)"
                     r"(?:; ([\d.]+) s of it forming the process group)?", proc.stdout)
    images, seconds, rate = int(done.group(1)), float(done.group(2)), float(done.group(3))
    launch = float(done.group(4) or 0.0)
    peak = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stdout).group(1))
    return Run(rate, images / max(seconds - launch, 1e-9), images / wall, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=10000,
                        help="images per run; the 2-process run carries ~2 s of start-up (torch import, rendezvous)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds of a 1- and a 2-process run, in turn 1-2 and 2-1 (median)")
    parser.add_argument("--out", default=None, help="folder for the runs' output (default: the system temp folder)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of 2,000 vs 20,000 images instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        if args.memory:
            config = REPO / "configs" / "quickstart.yaml"
            results = {}
            for n in (2000, 20000):
                done = run(["generate", str(config), "--out", f"{tmp}/m{n}", "--num-images", str(n), "--quiet"])
                results[n] = done.peak_kib
                print(f"{n:6d} images (quickstart, 256x256): {done.rate:7.1f} images/s, "
                      f"peak RSS {done.peak_kib / 1024:7.1f} MiB")
            print(f"peak RSS 20,000 / 2,000: {results[20000] / results[2000]:.3f}")
            return
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit(f"scale-out needs 2 CPUs; this process may use {len(cpus)}")

        def generate(name: str, extra: list[str], on: set[int] | None = None, cv2_threads: int | None = None) -> Run:
            out = Path(tmp) / name
            done = run(["generate", args.config, "--out", str(out), "--num-images", str(args.images), "--quiet",
                        *extra], on, cv2_threads)
            shutil.rmtree(out)
            os.sync()  # the run's writes and their deletion land before the next run, not during it
            return done

        effs = {"rate": [], "steady": [], "whole": []}
        ones, twos = [], []  # rates of the 1- and 2-process runs
        for r in range(args.rounds):  # alternating, so that a busy spell lands on both sides of a ratio
            if r % 2 == 0:  # 1 then 2 processes, next round 2 then 1: a steady drift cancels over two rounds
                one = generate(f"p1-{r}", [], {cpus[0]})
                two = generate(f"p2-{r}", ["--processes", "2"])
            else:
                two = generate(f"p2-{r}", ["--processes", "2"])
                one = generate(f"p1-{r}", [], {cpus[0]})
            ones.append(one.rate)
            twos.append(two.rate)
            for key in effs:
                effs[key].append(getattr(two, key) / (2 * getattr(one, key if key == "whole" else "rate")))
            print(f"round {r + 1}: 1 process on 1 CPU {one.rate:6.1f} images/s, 2 processes {two.rate:6.1f} "
                  f"({two.steady:.1f} without forming the process group): {effs['rate'][-1]:.0%} "
                  f"({effs['steady'][-1]:.0%}); whole commands {one.whole:.1f} and {two.whole:.1f}: "
                  f"{effs['whole'][-1]:.0%}", flush=True)
        threads1 = generate("p1-threads1", [], None, 1)
        whole = generate("p1-all", [])
        pinned = statistics.median(ones)
        print(f"1 process, unpinned, 1 OpenCV thread: {threads1.rate:6.1f} images/s against {pinned:.1f} pinned (median "
              f"of the rounds): {threads1.rate / pinned:.2f}x; against it, 2 processes scale at "
              f"{statistics.median(twos) / (2 * threads1.rate):.0%}")
        print(f"1 process, unpinned, OpenCV's {len(cpus)} threads: {whole.rate:6.1f} images/s (what one process "
              f"gets from the whole machine; 2 processes give {two.rate / whole.rate:.2f}x that in the last round)")
        median = {key: statistics.median(values) for key, values in effs.items()}
        print(f"scaling efficiency on 2 processes, median of {args.rounds} rounds: {median['rate']:.0%} "
              f"({median['steady']:.0%} without forming the process group; {median['whole']:.0%} over the whole "
              f"commands, Python's start and accelerate's launcher included)")

if __name__ == "__main__":
    main()
