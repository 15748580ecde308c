"""Memory at scale: peak RSS of `generate` for 100,000 bench_512 images against 2,000, and of `augment`
over 10,000 images against 1,000. Nothing is held per image (records stream through shards), so each
pair must stay within 10% of each other.

Each figure is the peak resident set of one child process `python -m vision_synth ...`, as the
kernel counts it for that child (os.wait4's rusage, ru_maxrss), so the figures of one run do not mix.
The augment input is made by `generate` from bench_512's scene at --augment-size pixels (default 128,
smaller than bench_512's 512 so that 10,000 images are made in a minute); the 1,000-image input is
the first 1,000 of the same run (sample i depends only on the seed and i).

Usage:
  python tools/bench_memory.py                                   # both; ~15 min of one core for 100,000 images
  python tools/bench_memory.py --generate 2000 20000 --augment 1000 10000 --augment-size 64
  python tools/bench_memory.py --skip-generate                   # augment only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1.10  # the larger run's peak may be at most 10% above the smaller's


def peak_rss(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of `python -m vision_synth argv` run as a child of this process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"vision-synth {' '.join(argv)} failed (exit {proc.returncode}):\n{stderr.decode()[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # ru_maxrss is in KiB on Linux


def compare(label: str, small: int, large: int, run) -> bool:
    (rss_small, t_small), (rss_large, t_large) = run(small), run(large)
    ratio = rss_large / rss_small
    print(f"{label}: {small:>7,d} images: peak RSS {rss_small:7.1f} MiB ({small / t_small:6.1f} images/s)")
    print(f"{label}: {large:>7,d} images: peak RSS {rss_large:7.1f} MiB ({large / t_large:6.1f} images/s)")
    ok = ratio <= LIMIT
    print(f"{label}: peak RSS {large:,d} / {small:,d} = {ratio:.3f} (limit {LIMIT:.2f}: {'met' if ok else 'NOT met'})",
          flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--generate", type=int, nargs=2, default=(2000, 100000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--augment", type=int, nargs=2, default=(1000, 10000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--augment-size", type=int, default=128, help="side of the augment input images")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--skip-augment", action="store_true")
    parser.add_argument("--work", help="folder for the datasets (default: the system temp folder; ~5 GB for "
                                       "100,000 bench_512 images)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="vs_bench_memory_", dir=args.work) as tmp:
        tmp = Path(tmp)
        if not args.skip_generate:
            def generate(n: int):
                return peak_rss(["generate", args.config, "--out", str(tmp / f"generate-{n}"), "--num-images",
                                 str(n), "--quiet"])

            ok &= compare("generate (bench_512, 512x512 JPEG)", *args.generate, generate)
        if not args.skip_augment:
            config = yaml.safe_load(Path(args.config).read_text())
            side = args.augment_size
            config = {**config, "name": "bench_memory_input",
                      "image": {**config["image"], "width": side, "height": side}}
            for obj in config["scene"].get("objects", []):  # the sprite folders, written absolute
                obj["source"]["path"] = str((Path(args.config).parent / obj["source"]["path"]).resolve())
            config_path = tmp / "augment_input.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            for n in args.augment:
                peak_rss(["generate", str(config_path), "--out", str(tmp / f"input-{n}"), "--num-images", str(n),
                          "--quiet"])

            def augment(n: int):
                data = tmp / f"input-{n}"
                return peak_rss(["augment", "--coco", str(data / "annotations.json"), "--images", str(data / "images"),
                                 "--pipeline", str(REPO / "configs" / "pipelines" / "geometric_color.yaml"),
                                 "--copy-paste", "--out", str(tmp / f"augment-{n}"), "--quiet"])

            ok &= compare(f"augment ({side}x{side} input, geometric_color + copy-paste)", *args.augment, augment)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
