"""The class statistics the paste defaults follow: sizes, orientation, brightness, greyscale."""

import cv2
import numpy as np
import pytest

from helpers import write_coco_dataset
from vision_synth.coco.reader import load_coco
from vision_synth.rare.stats import JITTER_LIMITS, class_stats
from vision_synth.seeding import rng_for
from vision_synth.types import Instances, Provenance, Sample


def _dataset(tmp_path, angles, levels, grey=True, size=96):
    """One image per angle: an ellipse of axes 14×4 at that angle, at grey level `levels[i]`."""
    samples = []
    for i, (angle, level) in enumerate(zip(angles, levels)):
        rng = rng_for(5, i)
        image = (rng.random((size, size, 3)) * 20 + 30).astype(np.uint8)
        if grey:
            image[..., 1] = image[..., 2] = image[..., 0]
        mask = np.zeros((size, size), np.uint8)
        cv2.ellipse(mask, (48, 48), (14, 4), float(angle), 0, 360, 1, -1)
        image[mask > 0] = (level, level, level) if grey else (level, 40, 200)
        samples.append(Sample(i, 0, image, Instances(mask[None].astype(bool), [1]), Provenance("t", synthetic=False)))
    coco, images = write_coco_dataset(tmp_path, samples, category_names={1: "scratch"})
    data = load_coco(coco, images)
    return class_stats(data, {im["id"] for im in data.images}, 1)


def test_aligned_instances_are_turned_only_as_far_as_the_real_ones_vary(tmp_path):
    stats = _dataset(tmp_path / "a", [10, 12, 14, 16, 18], [200] * 5)
    assert stats.elongated == 1.0
    assert stats.orientation_spread() == pytest.approx(2.8, abs=1.0)
    lo, hi = stats.rotation()
    assert -10 < lo < 0 < hi < 10


def test_randomly_oriented_instances_may_turn_any_way(tmp_path):
    stats = _dataset(tmp_path / "r", [0, 36, 72, 108, 144], [200] * 5)
    assert stats.rotation() == (-180.0, 180.0)


def test_brightness_follows_the_real_spread_and_greyscale_keeps_saturation(tmp_path):
    stats = _dataset(tmp_path / "b", [0, 36, 72, 108, 144], [150, 170, 190, 210, 230])
    jitter = stats.color_jitter()
    lo, hi = jitter.brightness
    assert lo < 1.0 < hi and JITTER_LIMITS[0] <= lo and hi <= JITTER_LIMITS[1]
    assert 150 / 190 - 0.06 < lo < 1.0 and 1.0 < hi < 230 / 190 + 0.06  # 10th/90th percentiles of the levels
    assert stats.grey and jitter.saturation == (1.0, 1.0)
    same = _dataset(tmp_path / "s", [0, 36, 72], [200, 200, 200]).color_jitter()
    assert same.brightness == (1.0, 1.0)  # no spread in the data, none invented
    colour = _dataset(tmp_path / "c", [0, 36, 72], [200, 200, 200], grey=False)
    assert not colour.grey and colour.color_jitter().saturation == (0.9, 1.1)


def test_sizes_are_the_longest_box_side_over_the_shorter_image_side(tmp_path):
    stats = _dataset(tmp_path / "z", [0, 90], [200, 200])
    assert stats.scale() == pytest.approx((29 / 96, 29 / 96), abs=1.5 / 96)
