"""Plain helpers of the quality tests: the faster network input size, small synthetic/reference
datasets written with the project's writer, parsed `check` arguments. Fixtures: conftest.py."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from helpers import synthetic_samples, write_coco_dataset
from vision_synth.types import Provenance

# The network is the FID architecture; tests only feed it 75×75 (its smallest input) instead of
# 299×299 so a CPU run takes seconds. Loading and every formula are unchanged.
TEST_INPUT_SIZE = 75


def synthetic(n: int, seed: int, size=(64, 64)):
    """Samples flagged synthetic (the checks compare only synthetic images with the reference)."""
    made = Provenance("procedural", synthetic=True)
    return [s.replace(provenance=made) for s in synthetic_samples(n, size, seed=seed)]


def real(n: int, seed: int, size=(64, 64)):
    return synthetic_samples(n, size, seed=seed)


def make_pair(root: Path, n_reference: int = 24, n_synthetic: int = 20, synthetic_samples_=None):
    """(dataset dir, reference json, reference images) under `root`."""
    ref_json, ref_images = write_coco_dataset(root / "reference", real(n_reference, seed=101))
    samples = synthetic_samples_ if synthetic_samples_ is not None else synthetic(n_synthetic, seed=202)
    write_coco_dataset(root / "dataset", samples)
    return root / "dataset", ref_json, ref_images


def check_args(dataset: Path, reference: Path, reference_images: Path, *extra: str) -> argparse.Namespace:
    """Parsed `vision-synth check` arguments, as the CLI would pass them."""
    from vision_synth.quality.command import add_check_parser

    parser = argparse.ArgumentParser(prog="vision-synth")
    add_check_parser(parser.add_subparsers(dest="command"))
    argv = ["check", str(dataset), "--reference", str(reference), "--reference-images", str(reference_images),
            "--quiet", *extra]
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def add_noise(images: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(im + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8) for im in images]
