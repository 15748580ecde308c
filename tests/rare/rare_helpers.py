"""Plain helpers of the rare tests: a small real-looking dataset with one rare class among common ones
and clean images, and the rare commands run through the real `vision-synth` entry point."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from helpers import write_coco_dataset
from vision_synth.cli import main
from vision_synth.seeding import rng_for
from vision_synth.types import Instances, Provenance, Sample

NAMES = {1: "scratch", 2: "stain", 3: "crack"}  # crack is the rare one


def rare_samples(n_images: int = 16, size: int = 64, rare_on: tuple[int, ...] = (1, 4, 7), clean: int = 4):
    """Textured images; images 0..n-clean-1 have two common instances each (ellipses, blobs), the
    images in `rare_on` also a thin dark line (class 3); the last `clean` images have none."""
    samples = []
    for i in range(n_images):
        rng = rng_for(11, i)
        image = (rng.random((size, size, 3)) * 40 + 100).astype(np.uint8)
        masks, cats = [], []
        if i < n_images - clean:
            for k, cat in enumerate((1, 2)):
                m = np.zeros((size, size), np.uint8)
                cy, cx = 14 + 34 * k, int(rng.integers(12, size - 12))
                cv2.ellipse(m, (cx, cy), (int(rng.integers(4, 9)), int(rng.integers(3, 6))), float(rng.uniform(0, 180)),
                            0, 360, 1, -1)
                masks.append(m.astype(bool))
                cats.append(cat)
            if i in rare_on:
                m = np.zeros((size, size), np.uint8)
                x0 = int(rng.integers(4, 20))
                cv2.line(m, (x0, 30), (x0 + int(rng.integers(20, 36)), 34 + int(rng.integers(-3, 4))), 1, 2)
                masks.append(m.astype(bool) & ~np.any(masks, axis=0))
                cats.append(3)
            for m, c in zip(masks, cats):
                image[m] = (40, 40, 40) if c == 3 else ((200, 60, 60) if c == 1 else (60, 160, 60))
            inst = Instances(np.stack(masks), cats)
        else:
            inst = Instances.empty(size, size)
        samples.append(Sample(i, 0, image, inst, Provenance("test", synthetic=False)))
    return samples


def write_rare_dataset(root: Path, **kwargs) -> tuple[Path, Path]:
    return write_coco_dataset(root, rare_samples(**kwargs), category_names=NAMES)


def run(argv: list[str], capsys=None) -> int:
    """`vision-synth ARGV` in this process; its exit code."""
    return main(argv)
