import numpy as np
import pytest

from vision_synth.augment.planes import pack_masks, unpack_masks


def random_masks(n, overlap, seed=0, size=(40, 50)):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, *size), bool)
    for k in range(n):
        y, x = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
        masks[k, y : y + rng.integers(2, 12), x : x + rng.integers(2, 12)] = True
    if not overlap:  # later ones on top, as visible masks are
        for k in range(n):
            masks[:k] &= ~masks[k]
    return masks


@pytest.mark.parametrize("n, overlap, shared", [(0, False, True), (5, False, True), (5, True, True),
                                                (12, True, False), (300, False, True)])
def test_pack_unpack_round_trip(n, overlap, shared):
    masks = random_masks(n, overlap)
    packed = pack_masks(masks, shared)
    unpacked, counts = unpack_masks(packed.planes, packed)
    assert np.array_equal(unpacked, masks)
    assert counts.tolist() == [int(m.sum()) for m in masks]


def test_non_overlapping_masks_share_one_plane_and_overlaps_get_more():
    assert len(pack_masks(random_masks(10, overlap=False), True).planes) == 1
    masks = np.zeros((3, 10, 10), bool)
    masks[:, 2:6, 2:6] = True
    assert len(pack_masks(masks, True).planes) == 3


def test_many_instances_use_wide_labels():
    packed = pack_masks(random_masks(300, overlap=False, size=(200, 200)), True)
    assert packed.planes.dtype == np.uint16
