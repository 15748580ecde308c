import numpy as np
import pytest
from pycocotools import mask as coco_mask

from vision_synth import masks as mask_ops


def random_masks(n=6, h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), bool)
    for k in range(n):
        y0, x0 = rng.integers(0, h - 5), rng.integers(0, w - 5)
        masks[k, y0 : y0 + rng.integers(1, 12), x0 : x0 + rng.integers(1, 15)] = rng.random() > 0.1
        masks[k] &= rng.random((h, w)) > 0.2
    masks[0] = False  # one empty mask
    masks[1, -1, -1] = True  # touches the far corner
    return masks


def test_boxes_and_areas_match_pycocotools():
    masks = random_masks()
    rles = coco_mask.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    assert mask_ops.derive_boxes(masks).tolist() == coco_mask.toBbox(rles).astype(int).tolist()
    assert mask_ops.mask_areas(masks).tolist() == coco_mask.area(rles).tolist()


def test_rle_roundtrip_compressed_and_uncompressed():
    masks = random_masks(seed=1)
    for mask, rle in zip(masks, mask_ops.encode_rle(masks)):
        assert isinstance(rle["counts"], str)
        assert np.array_equal(mask_ops.decode_rle(rle), mask)
        unc = mask_ops.uncompress_rle(mask)
        assert all(isinstance(c, int) for c in unc["counts"])
        assert np.array_equal(mask_ops.decode_rle(unc), mask)
        assert mask_ops.rle_area_and_box(rle) == (int(mask.sum()), mask_ops.derive_boxes(mask[None])[0].tolist())


@pytest.mark.parametrize("shape", ["blob", "sliver", "pixel", "two_parts"])
def test_polygons_have_three_points_and_cover_the_mask(shape):
    mask = np.zeros((40, 40), bool)
    if shape == "blob":
        mask[5:30, 8:20] = True
    elif shape == "sliver":
        mask[10, 5:30] = True
    elif shape == "pixel":
        mask[3, 3] = True
    else:
        mask[2:10, 2:10] = True
        mask[20:35, 20:35] = True
    polygons = mask_ops.mask_to_polygons(mask)
    assert polygons and all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    raster = mask_ops.polygons_to_mask(polygons, 40, 40)
    # polygons trace pixel centres: the raster lies inside the mask's box and overlaps it
    assert (raster & mask).any() or shape in ("sliver", "pixel")
    assert len(mask_ops.mask_to_polygons(mask, largest_only=True)) == 1


def test_segmentation_to_mask_accepts_every_form():
    mask = np.zeros((20, 30), bool)
    mask[4:12, 6:20] = True
    poly = mask_ops.mask_to_polygons(mask)
    for seg in (mask_ops.encode_rle(mask[None])[0], mask_ops.uncompress_rle(mask), poly):
        out = mask_ops.segmentation_to_mask(seg, 20, 30)
        assert out.shape == (20, 30) and (out & mask).sum() >= 0.8 * out.sum()
    with pytest.raises(ValueError):
        mask_ops.segmentation_to_mask(mask_ops.encode_rle(mask[None])[0], 30, 20)


@pytest.mark.parametrize("seed", range(6))
def test_rle_equals_pycocotools_encode(seed):
    rng = np.random.default_rng(seed)
    masks = random_masks(n=5, seed=seed)
    masks[2] = rng.random(masks.shape[1:]) > 0.5  # noisy, touching every edge
    masks[3, :, 0] = True  # first column full
    masks[4, :, -1] = True  # last column full
    reference = coco_mask.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    ours = mask_ops.encode_rle(masks)
    assert [r["counts"] for r in ours] == [r["counts"].decode() for r in reference]
