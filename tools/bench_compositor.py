"""Benchmark the procedural generator end to end against its floor, in one run.

End to end = compose + masks + RLE + JPEG encode + atomic file write + shard record, per process
(the runner's own loop). Floor = only JPEG-encode and RLE-encode the same images and masks.
Prints images/s for both and their ratio, from wall-clock time and from this process's CPU time
(the CPU figures hold on a machine shared with other work).

Usage: python tools/bench_compositor.py [--config configs/bench_512.yaml] [--images 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vision_synth import masks as mask_ops
from vision_synth.coco.writer import encode_image
from vision_synth.config import load_config
from vision_synth.runner import generate_indices, prepare_output
from vision_synth.scene.compositor import Compositor

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bench_512.yaml"))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (default 1: the figure is per process, one process per core)")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)

    config = load_config(args.config, num_images=args.images)
    compositor = Compositor(config)
    compositor.sample(0)  # warm caches (imports, sprite loading is already done)
    n = args.images

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        prepare_output(out, config, overwrite=False)
        t0, c0 = time.perf_counter(), time.process_time()
        generate_indices(config, compositor, out, list(range(n)), "bench.jsonl", show_progress=False)
        end_to_end = (time.perf_counter() - t0, time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    samples = [compositor.sample(i) for i in range(n)]
    compose_only = (time.perf_counter() - t0, time.process_time() - c0)
    instances = sum(len(s.instances) for s in samples)

    t0, c0 = time.perf_counter(), time.process_time()
    for s in samples:
        encode_image(s.image, config.image.format, config.image.quality)
        mask_ops.encode_rle(s.instances.masks)
    floor = (time.perf_counter() - t0, time.process_time() - c0)

    w, h = config.image.width, config.image.height
    print(f"workload: {config.name}, {n} images {w}x{h} {config.image.format}, {instances / n:.1f} instances/image")
    print(f"{'':46s} {'wall images/s':>14s} {'CPU images/s':>13s}")
    for label, (wall, cpu) in (("end to end (compose, masks, RLE, JPEG, write)", end_to_end),
                               ("  of which compose only", compose_only),
                               ("floor (JPEG encode + RLE encode only)", floor)):
        print(f"{label:46s} {n / wall:14.1f} {n / cpu:13.1f}")
    print(f"{'ratio end to end / floor':46s} {end_to_end[0] / floor[0]:13.2f}x {end_to_end[1] / floor[1]:12.2f}x")


if __name__ == "__main__":
    main()
