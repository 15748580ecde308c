"""Benchmark the procedural generator end to end against its floor, in one run.

End to end = compose + masks + RLE + JPEG encode + atomic file write + shard record, per process
(the runner's own loop). Floor = only JPEG-encode and RLE-encode the same images and masks.
The two are measured in alternating rounds over the same samples (end to end over a round, then
each sample composed and floor-encoded in turn), so that a busy spell on a shared machine lands
on both sides of the ratio.
Prints images/s for each and the ratio, from wall-clock time and from this process's CPU time.

Usage: python tools/bench_compositor.py [--config configs/bench_512.yaml] [--images 300] [--rounds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vision_synth import masks as mask_ops
from vision_synth.imageio import encode_image
from vision_synth.config import load_config
from vision_synth.runner import generate_indices, prepare_output
from vision_synth.scene.compositor import Compositor

REPO = Path(__file__).resolve().parents[1]


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - t0, time.process_time() - c0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10, help="alternating measurement rounds")
    parser.add_argument("--out", default=None, help="folder for the images written (default: the system temp folder)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (default 1: the figure is per process, one process per core)")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)

    config = load_config(args.config, num_images=args.images)
    compositor = Compositor(config)
    compositor.sample(0)  # warm caches (imports, sprite loading is already done)
    n = args.images
    rounds = max(1, min(args.rounds, n))
    totals = {"end": [0.0, 0.0], "compose": [0.0, 0.0], "floor": [0.0, 0.0]}
    instances = 0

    def add(key, wall, cpu):
        totals[key][0] += wall
        totals[key][1] += cpu

    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        out = Path(tmp) / "out"
        prepare_output(out, config, overwrite=False)
        for r in range(rounds):
            chunk = list(range(r * n // rounds, (r + 1) * n // rounds))
            wall, cpu, _ = _timed(lambda: generate_indices(config, compositor, out, chunk, f"bench{r}.jsonl",
                                                           show_progress=False))
            add("end", wall, cpu)
            for i in chunk:  # one sample at a time, as the runner holds them
                wall, cpu, sample = _timed(lambda: compositor.sample(i))
                add("compose", wall, cpu)
                wall, cpu, _ = _timed(lambda: (encode_image(sample.image, config.image.format, config.image.quality),
                                               mask_ops.encode_rle(sample.instances.masks)))
                add("floor", wall, cpu)
                instances += len(sample.instances)

    w, h = config.image.width, config.image.height
    print(f"workload: {config.name}, {n} images {w}x{h} {config.image.format}, {instances / n:.1f} instances/image, "
          f"{rounds} alternating rounds")
    print(f"{'':46s} {'wall images/s':>14s} {'CPU images/s':>13s}")
    for label, key in (("end to end (compose, masks, RLE, JPEG, write)", "end"),
                       ("  of which compose only", "compose"),
                       ("floor (JPEG encode + RLE encode only)", "floor")):
        wall, cpu = totals[key]
        print(f"{label:46s} {n / wall:14.1f} {n / cpu:13.1f}")
    (end_wall, end_cpu), (floor_wall, floor_cpu) = totals["end"], totals["floor"]
    print(f"{'ratio end to end / floor':46s} {end_wall / floor_wall:13.2f}x {end_cpu / floor_cpu:12.2f}x")


if __name__ == "__main__":
    main()
