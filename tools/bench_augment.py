"""Time the augmentation stage (`augment_sample`) in one process: images/s at 512×512 with about 8
instances per image, through a typical geometric + colour pipeline (configs/pipelines/geometric_color.yaml).

Usage: python tools/bench_augment.py [--size 512] [--instances 8] [--images 60] [--rounds 10]
                                     [--pipeline FILE] [--threads N] [--profile]
Counts the stage only (pipeline, masks, boxes and areas re-derived), not image encoding or writing.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision_synth.augment.albu import load_pipeline  # noqa: E402
from vision_synth.augment.stage import AugmentRules, augment_sample  # noqa: E402
from vision_synth.seeding import rng_for  # noqa: E402
from vision_synth.types import Instances, Provenance, Sample  # noqa: E402

TARGET = 150.0  # images/s per process


def make_sample(index: int, size: int, count: int) -> Sample:
    """A textured background with `count` ellipses and rectangles; later shapes hide earlier ones,
    so visible masks do not overlap (as the compositor's do)."""
    rng = rng_for(0, index)
    noise = rng.random((size // 8, size // 8, 3)).astype(np.float32)
    image = (cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) * 90 + 80).clip(0, 255).astype(np.uint8)
    labels = np.zeros((size, size), np.int32)
    for k in range(1, count + 1):
        shape = np.zeros((size, size), np.uint8)
        cy, cx = (int(v) for v in rng.integers(size // 10, size - size // 10, 2))
        ry, rx = (int(v) for v in rng.integers(size // 30, size // 8, 2))
        if k % 2:
            cv2.ellipse(shape, (cx, cy), (rx, ry), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            shape[max(cy - ry, 0) : cy + ry, max(cx - rx, 0) : cx + rx] = 1
        labels[shape > 0] = k
        image[shape > 0] = rng.integers(0, 255, 3)
    masks = labels[None] == np.arange(1, count + 1)[:, None, None]
    instances = Instances(masks, rng.integers(1, 4, count)).without_empty()
    return Sample(index, 0, image, instances, Provenance("bench"))


def run(samples: list[Sample], pipeline, n: int) -> tuple[float, float, int]:
    """(images/s by the wall clock, images/s by this process's CPU time, instances kept)."""
    rules = AugmentRules()
    kept = 0
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        out = augment_sample(samples[i % len(samples)], pipeline, rng_for(0, i, 0), rules)
        kept += len(out.instances.boxes)  # boxes re-derived from the moved masks
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu), kept


def run_image_only(samples: list[Sample], pipeline, n: int) -> float:
    """The same pipeline on the images alone: the floor set by albumentations and OpenCV."""
    empty = np.zeros((0, *samples[0].image.shape[:2]), np.uint8)
    start = time.perf_counter()
    for i in range(n):
        pipeline.apply(samples[i % len(samples)].image, empty, rng_for(0, i, 0))
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--images", type=int, default=60, help="augment_sample calls per round")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds; the best is reported (other "
                                                               "processes on the machine only slow a round down)")
    parser.add_argument("--pipeline", default=str(REPO / "configs" / "pipelines" / "geometric_color.yaml"))
    parser.add_argument("--threads", type=int, help="cv2.setNumThreads (default: OpenCV's choice)")
    parser.add_argument("--profile", action="store_true", help="print the top functions by time")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)

    pipeline = load_pipeline(args.pipeline)
    samples = [make_sample(i, args.size, args.instances) for i in range(16)]
    mean_instances = np.mean([len(s.instances) for s in samples])
    run(samples, pipeline, 20)  # warm up (imports, OpenCV kernels)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    separate = dataclasses.replace(pipeline, shared_planes=False)  # one 0/1 plane per instance
    rates, cpu_rates, image_only_rates, separate_rates = [], [], [], []
    for _ in range(args.rounds):  # interleaved, so that load from other processes hits all alike
        rate, cpu_rate, kept = run(samples, pipeline, args.images)
        rates.append(rate)
        cpu_rates.append(cpu_rate)
        image_only_rates.append(run_image_only(samples, pipeline, args.images))
        separate_rates.append(run(samples, separate, args.images)[0])
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    rate, image_only = max(rates), max(image_only_rates)
    print(f"rounds (images/s): {', '.join(f'{r:.1f}' for r in rates)}; by CPU time of this process: "
          f"{', '.join(f'{r:.1f}' for r in cpu_rates)}")
    print(f"augment stage: {rate:.1f} images/s per process at {args.size}×{args.size}, "
          f"{mean_instances:.1f} instances/image in, {kept / args.images:.1f} out "
          f"(pipeline {Path(args.pipeline).name}, shared label planes: {pipeline.shared_planes}, "
          f"OpenCV threads: {cv2.getNumThreads()})")
    print(f"same pipeline on the images alone (no labels): {image_only:.1f} images/s; labels cost "
          f"{1000 / rate - 1000 / image_only:.2f} ms/image")
    print(f"with one mask plane per instance instead of shared label planes: {max(separate_rates):.1f} images/s")
    print(f"target {TARGET:.0f} images/s: {'met' if rate >= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
