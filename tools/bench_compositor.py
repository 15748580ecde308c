"""Benchmark the procedural generator end to end against its floor, in one run.

End to end = compose + masks + RLE + JPEG encode + atomic file write + shard record, per process
(the runner's own loop). Floor = only JPEG-encode and RLE-encode the same images and masks.
Prints images/s for both and their ratio.

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
    args = parser.parse_args()

    config = load_config(args.config, num_images=args.images)
    compositor = Compositor(config)
    compositor.sample(0)  # warm caches (imports, sprite loading is already done)
    n = args.images

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        prepare_output(out, config, overwrite=False)
        t0 = time.perf_counter()
        generate_indices(config, compositor, out, list(range(n)), "bench.jsonl", show_progress=False)
        end_to_end = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = [compositor.sample(i) for i in range(n)]
    compose_only = time.perf_counter() - t0
    instances = sum(len(s.instances) for s in samples)

    t0 = time.perf_counter()
    for s in samples:
        encode_image(s.image, config.image.format, config.image.quality)
        mask_ops.encode_rle(s.instances.masks)
    floor = time.perf_counter() - t0

    w, h = config.image.width, config.image.height
    print(f"workload: {config.name}, {n} images {w}x{h} {config.image.format}, {instances / n:.1f} instances/image")
    print(f"end to end (compose, masks, RLE, JPEG, write): {n / end_to_end:8.1f} images/s  ({1000 * end_to_end / n:.2f} ms/image)")
    print(f"  of which compose only:                       {n / compose_only:8.1f} images/s  ({1000 * compose_only / n:.2f} ms/image)")
    print(f"floor (JPEG encode + RLE encode only):         {n / floor:8.1f} images/s  ({1000 * floor / n:.2f} ms/image)")
    print(f"ratio end to end / floor:                      {end_to_end / floor:8.2f}x")


if __name__ == "__main__":
    main()
