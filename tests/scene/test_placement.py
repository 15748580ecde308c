import numpy as np
import pytest

from vision_synth.scene.layers import Layer
from vision_synth.scene.placement import PlacementRules, Request, place_instances

LOOSE = PlacementRules(max_overlap=1.0, min_visible_area=1, min_visible_fraction=0.0)


def square(h, w, value, category=1, blend="alpha"):
    return Layer(np.ones((h, w), np.float32), np.float32(0.0), np.full(3, value, np.float32), category, blend=blend)


def place(requests, rules=LOOSE, size=64, seed=0):
    bg = np.zeros((size, size, 3), np.uint8)
    return place_instances(bg, requests, np.random.default_rng(seed), rules, amodal=True)


def test_fully_covered_object_is_dropped():
    image, inst, stats = place([Request(square(10, 10, 50, 1), at=(5, 5)), Request(square(20, 20, 100, 2), at=(0, 0))])
    assert inst.category_ids.tolist() == [2] and stats.covered == 1
    assert (image[0:20, 0:20] == 100).all()


def test_half_covered_object_keeps_half_its_area():
    _, inst, _ = place([Request(square(10, 10, 50, 1), at=(10, 10)), Request(square(10, 5, 100, 2), at=(10, 10))])
    assert inst.areas.tolist() == [50, 50]
    assert inst.boxes.tolist()[0] == [15, 10, 5, 10]
    assert inst.attributes["occlusion"].tolist() == pytest.approx([0.5, 0.0])
    assert inst.amodal_masks[0].sum() == 100


def test_visible_masks_are_the_pixels_each_instance_painted_last():
    rng = np.random.default_rng(1)
    requests = [Request(square(int(rng.integers(4, 20)), int(rng.integers(4, 20)), 10 * (k + 1), k + 1)) for k in range(12)]
    image, inst, _ = place(requests, seed=2)
    for mask, cat in zip(inst.masks, inst.category_ids):
        assert (image[mask] == 10 * cat).all()
    union = inst.masks.any(axis=0)
    assert (image[~union] == 0).all()  # no painted pixel is left without a label


def test_partial_visibility_below_minimum_is_refused():
    rules = PlacementRules(max_overlap=1.0, min_visible_area=1, min_visible_fraction=0.6)
    # the second square would leave the first 50% visible (< 60%): refused, never pasted
    image, inst, stats = place([Request(square(10, 10, 50, 1), at=(10, 10)), Request(square(10, 5, 100, 2), at=(10, 10))], rules)
    assert inst.category_ids.tolist() == [1] and stats.skipped == 1
    assert (image[10:20, 10:20] == 50).all()


@pytest.mark.parametrize("seed", range(5))
def test_random_placement_respects_rules(seed):
    rules = PlacementRules(max_overlap=0.3, min_visible_area=10, min_visible_fraction=0.4, max_tries=30)
    rng = np.random.default_rng(seed)
    requests = [Request(square(int(rng.integers(5, 25)), int(rng.integers(5, 25)), 5 * k + 5, k + 1)) for k in range(15)]
    _, inst, _ = place(requests, rules, seed=seed)
    full = inst.amodal_masks.sum(axis=(1, 2))
    assert (inst.areas >= 10).all() and (inst.areas >= 0.4 * full).all()
    assert not (inst.masks.sum(axis=0) > 1).any()  # visible masks never overlap


def test_region_confines_placement():
    region = np.zeros((64, 64), bool)
    region[30:60, 30:60] = True
    requests = [Request(square(6, 6, 80 + k, k + 1), region=region) for k in range(6)]
    _, inst, _ = place(requests, seed=3)
    assert len(inst) > 0 and not (inst.masks & ~region).any()


def test_poisson_blend_changes_only_masked_pixels():
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    alpha = np.zeros((20, 20), np.float32)
    alpha[3:17, 3:17] = 1
    layer = Layer.solid(alpha, np.full(3, 200, np.float32), 1, blend="poisson")
    for at in [(10, 10), (0, 0), (44, 44)]:  # interior and both corners
        image, inst, _ = place_instances(bg, [Request(layer, at=at)], rng, LOOSE)
        assert np.array_equal(image[~inst.masks[0]], bg[~inst.masks[0]])
        assert not np.array_equal(image[inst.masks[0]], bg[inst.masks[0]])
