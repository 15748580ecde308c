"""Scale-out benchmark: images/s with 1 and 2 processes (accelerate), and peak memory of a run of
2,000 versus 20,000 images (the streaming merge must keep it flat). All figures from one run.

The rate is the command's own (`generated N images in S s`): from the start of the run to the
published dataset, merge and card included. With 2 processes it includes forming the process
group (importing torch and accelerate, the rendezvous; about 2 s, which one process never pays),
so the efficiency is printed with it and without it.

Efficiency is rate(2 processes) / (2 × rate(1 process on 1 core)): the one-process run is pinned
to one CPU (os.sched_setaffinity), as each of the 2 processes has one (the runner gives each
process one OpenCV thread). Unpinned, one process also spreads OpenCV's resizes and warps over the
second core, and the kernel writes its files back there: that rate is printed beside it, and is
what one process gets from a whole machine.

Usage:
  python tools/bench_scale.py                      # throughput on configs/bench_512.yaml, 1 vs 2 processes (3,000 images)
  python tools/bench_scale.py --memory             # peak RSS, 2,000 vs 20,000 images (64x64)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run one generate in a child and report its own peak RSS (children of it: the accelerate workers).
CHILD = """
import resource, sys
from vision_synth.cli import main
code = main(sys.argv[1:])
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"PEAK_RSS_KB {max(own, kids)}")
raise SystemExit(code)
"""


def run(args: list[str], cpus: set[int] | None = None) -> tuple[float, int, float]:
    """(images/s, peak RSS in KiB, images/s without forming the process group) of one command,
    run on the CPUs `cpus` (default: all this process may use)."""
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, preexec_fn=pin)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    done = re.search(r"generated (\d+) images in ([\d.]+) s \(([\d.]+) images/s\)"
                     r"(?:; ([\d.]+) s of it forming the process group)?", proc.stdout)
    images, seconds, rate = int(done.group(1)), float(done.group(2)), float(done.group(3))
    launch = float(done.group(4) or 0.0)
    peak = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stdout).group(1))
    return rate, peak, images / max(seconds - launch, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=3000,
                        help="images per run; the 2-process run carries ~2 s of start-up (torch import, rendezvous)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of 2,000 vs 20,000 images instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory:
            config = REPO / "configs" / "quickstart.yaml"
            results = {}
            for n in (2000, 20000):
                rate, peak, _ = run(["generate", str(config), "--out", f"{tmp}/m{n}", "--num-images", str(n), "--quiet"])
                results[n] = peak
                print(f"{n:6d} images (quickstart, 256x256): {rate:7.1f} images/s, peak RSS {peak / 1024:7.1f} MiB")
            print(f"peak RSS 20,000 / 2,000: {results[20000] / results[2000]:.3f}")
            return
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit(f"scale-out needs 2 CPUs; this process may use {len(cpus)}")

        def generate(name: str, extra: list[str], on: set[int] | None = None):
            return run(["generate", args.config, "--out", f"{tmp}/{name}", "--num-images", str(args.images),
                        "--quiet", *extra], on)

        one, _, _ = generate("p1", [], {cpus[0]})
        print(f"1 process on 1 CPU:   {one:7.1f} images/s")
        two, _, two_steady = generate("p2", ["--processes", "2"])
        print(f"2 processes:          {two:7.1f} images/s ({two_steady:.1f} without forming the process group)")
        whole, _, _ = generate("p1-all", [])
        print(f"1 process, unpinned:  {whole:7.1f} images/s (OpenCV's threads and the kernel's writes on "
              f"{len(cpus)} CPUs)")
        print(f"scaling efficiency on 2 processes: {two / (2 * one):.0%} "
              f"({two_steady / (2 * one):.0%} without forming the process group); "
              f"2 processes / 1 unpinned process: {two / whole:.2f}x")


if __name__ == "__main__":
    main()
