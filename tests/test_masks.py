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


# (mask, area of its polygon raster): a polygon traces the outer pixel centres, so a part of h×w
# pixels rasterises to (h-1)×(w-1) of them; a 1-pixel-thin part is outlined by its pixel squares,
# which cover exactly its pixels
SHAPES = {"blob": ([(slice(5, 30), slice(8, 20))], 24 * 11),
          "sliver": ([(10, slice(5, 30))], 25),
          "pixel": ([(3, 3)], 1),
          "two_parts": ([(slice(2, 10), slice(2, 10)), (slice(20, 35), slice(20, 35))], 7 * 7 + 14 * 14)}


@pytest.mark.parametrize("shape", SHAPES)
def test_polygons_have_three_points_and_cover_the_mask(shape):
    parts, raster_area = SHAPES[shape]
    mask = np.zeros((40, 40), bool)
    for part in parts:
        mask[part] = True
    polygons = mask_ops.mask_to_polygons(mask)
    assert len(polygons) == len(parts) and all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    raster, area, box = mask_ops.polygons_area_and_box(polygons, 40, 40)
    assert not (raster & ~mask).any()  # never a pixel outside the mask
    assert area == int(raster.sum()) == raster_area
    assert box == list(mask_ops.mask_box(raster))
    if shape in ("sliver", "pixel"):
        assert np.array_equal(raster, mask)
    assert len(mask_ops.mask_to_polygons(mask, largest_only=True)) == 1


@pytest.mark.parametrize("seed", range(4))
def test_mask_box_is_the_extent_of_the_true_pixels(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((31, 47), bool)
    ys, xs = rng.integers(0, 31, 5), rng.integers(0, 47, 5)
    mask[ys, xs] = True
    x, y, w, h = mask_ops.mask_box(mask)
    assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
    assert mask_ops.mask_box(mask.astype(np.float32) * 0.3) == (x, y, w, h)  # nonzero counts, any dtype
    assert mask_ops.mask_box(mask[:, ::-1]) == (47 - x - w, y, w, h)  # a strided view
    rows, cols = mask_ops.box_slices(mask)
    assert mask[rows, cols].sum() == mask.sum() and mask[rows, cols].shape == (h, w)
    rows, cols = mask_ops.box_slices(mask, margin=2)
    assert (rows.start, cols.start) == (max(0, y - 2), max(0, x - 2))
    assert (rows.stop, cols.stop) == (min(31, y + h + 2), min(47, x + w + 2))


def test_an_empty_mask_has_an_empty_box():
    empty = np.zeros((5, 6), bool)
    assert mask_ops.mask_box(empty) == (0, 0, 0, 0)
    assert mask_ops.box_slices(empty, margin=3) == (slice(0, 0), slice(0, 0))
    assert mask_ops.derive_boxes(np.zeros((0, 5, 6), bool)).shape == (0, 4)


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


@pytest.mark.parametrize("seed", range(4))
def test_rle_counts_reads_back_the_runs_pycocotools_wrote(seed):
    masks = random_masks(n=5, seed=seed)
    masks[1] = np.random.default_rng(seed).random(masks.shape[1:]) > 0.5  # long strings, negative deltas
    for mask, rle in zip(masks, mask_ops.encode_rle(masks)):
        assert mask_ops.rle_counts(rle["counts"]).tolist() == mask_ops.column_runs(mask)
        mask_ops.check_rle(rle, *mask.shape)


@pytest.mark.parametrize("counts, message", [
    ("!!!!", "outside the COCO alphabet"), ("é", "outside the COCO alphabet"), ("a", "end in the middle"),
    ("PP1", "cover 1024 pixels, not 20×30 = 600"), ("", "cover 0 pixels"), ("o" * 8 + "0", "too long for any image"),
    ([1, 2], "cover 3 pixels"), ([-1, 601], "whole numbers >= 0"),
])
def test_rle_that_pycocotools_would_misread_is_refused(counts, message):
    """pycocotools decodes any bytes: runs that miss the image size leave pixels unset or write past
    its buffer (found by tools/fuzz.py)."""
    with pytest.raises(ValueError, match=message):
        mask_ops.check_rle({"size": [20, 30], "counts": counts}, 20, 30)


@pytest.mark.parametrize("polygon, message", [
    ([1e10, 1, 2, 1e10, 5, 6], r"has the point \(1e\+10, 1\) far outside the 30×20 image"),
    ([float("inf")] * 6, "not a finite number"), ([1, 2, 3, "4", 5, 6], "not a number"), ([1, 2, 3, 4], "at least 3"),
])
def test_a_polygon_that_would_crash_pycocotools_is_refused(polygon, message):
    """A far point makes pycocotools rasterise an edge billions of pixels long: a segfault, or all the
    memory (found by tools/fuzz.py)."""
    with pytest.raises(ValueError, match=message):
        mask_ops.segmentation_to_mask([polygon], 20, 30)
