"""Copy-paste across samples: pasted masks are exact, what they cover is hidden, class filter and
weights choose what is pasted."""

import numpy as np
import pytest

from vision_synth.augment import CopyPasteSpec, copy_paste
from vision_synth.types import Instances, Provenance, Sample

EXACT = dict(scale=(1.0, 1.0), flip=False, blend="hard", count=(1, 1), min_visible_area=1,
             min_visible_fraction=0.0, max_overlap=1.0)


def make(masks, cats, colours, size=(48, 64), background=90, amodal=False):
    image = np.full((*size, 3), background, np.uint8)
    image[..., 1] = np.arange(size[1], dtype=np.uint8)[None, :]  # some texture
    for m, c in zip(masks, colours):
        image[m] = c
    masks = np.asarray(masks, bool).reshape(-1, *size)
    inst = Instances(masks, cats, amodal_masks=masks.copy() if amodal else None)
    return Sample(0, 0, image, inst, Provenance("test", synthetic=False))


def box(size, y0, y1, x0, x1):
    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return m


def blob(size=(48, 64)):
    """An irregular source instance (disc with a notch) whose pixels are a gradient."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    m = ((yy - 20) ** 2 + (xx - 30) ** 2 < 100) & ~((yy < 20) & (xx > 30))
    return m


def test_pasted_mask_and_pixels_are_the_source_ones():
    size = (48, 64)
    source = make([blob(size)], [2], [(0, 0, 0)], size)
    source_image = source.image.copy()
    source_image[..., 0] = (np.arange(size[0])[:, None] * 5).astype(np.uint8)  # every pixel distinct
    source = source.replace(image=source_image)
    target = make([box(size, 5, 15, 5, 15)], [1], [(250, 250, 250)], size)
    for seed in range(5):
        out = copy_paste(target, [source], np.random.default_rng(seed), CopyPasteSpec(**EXACT))
        pasted = out.instances.attributes["source"] == "copy-paste"
        assert pasted.sum() == 1 and out.instances.category_ids[pasted].tolist() == [2]
        mask = out.instances.masks[pasted][0]
        ys, xs = np.nonzero(mask)
        sy, sx = np.nonzero(source.instances.masks[0])
        assert np.array_equal(ys - ys.min(), sy - sy.min()) and np.array_equal(xs - xs.min(), sx - sx.min())
        assert np.array_equal(out.image[mask], source.image[source.instances.masks[0]])  # hard blend: exact
        assert out.provenance.stages == ("copy-paste",) and out.provenance.synthetic


def test_covered_instances_shrink_and_fully_covered_ones_are_dropped():
    size = (48, 64)
    band = box(size, 20, 30, 0, 64)  # spans the width: any 40-wide paste covers part of it
    dot = box(size, 2, 4, 2, 4)
    target = make([band, dot], [1, 3], [(250, 0, 0), (0, 250, 0)], size, amodal=True)
    source = make([box(size, 0, 48, 0, 40)], [2], [(0, 0, 250)], size)  # full height, 40 wide
    for seed in range(5):
        out = copy_paste(target, [source], np.random.default_rng(seed), CopyPasteSpec(**EXACT))
        inst = out.instances
        pasted = inst.masks[inst.attributes["source"] == "copy-paste"][0]
        below = inst.attributes["source"] != "copy-paste"
        for mask, cat in zip(inst.masks[below], inst.category_ids[below]):
            original = {1: band, 3: dot}[int(cat)]
            assert np.array_equal(mask, original & ~pasted)  # lost exactly the covered pixels
            assert not (mask & pasted).any()
        if pasted[dot].all():
            assert 3 not in inst.category_ids.tolist()  # fully covered: dropped
        band_left = inst.masks[inst.category_ids == 1][0].sum()
        assert band_left == 640 - 400
        occlusion = inst.attributes["occlusion"][inst.category_ids == 1][0]
        assert occlusion == pytest.approx(400 / 640)
        assert inst.amodal_masks is not None and np.array_equal(inst.amodal_masks[inst.category_ids == 1][0], band)


def test_instances_left_too_small_are_dropped():
    size = (48, 64)
    band = box(size, 20, 30, 0, 64)
    target = make([band], [1], [(250, 0, 0)], size)
    source = make([box(size, 0, 48, 0, 60)], [2], [(0, 0, 250)], size)  # leaves at most 4 columns
    out = copy_paste(target, [source], np.random.default_rng(0),
                     CopyPasteSpec(**{**EXACT, "min_visible_area": 41}))
    assert out.instances.category_ids.tolist() == [2]


def test_class_filter_and_weights_choose_what_is_pasted():
    size = (48, 64)
    source = make([box(size, 0, 8, 0, 8), box(size, 20, 28, 20, 28)], [1, 2], [(1, 1, 1), (2, 2, 2)], size)
    target = make([], [], [], size)
    only_two = CopyPasteSpec(**{**EXACT, "classes": [2]})
    picks = [copy_paste(target, [source], np.random.default_rng(s), only_two).instances.category_ids.tolist()
             for s in range(10)]
    assert all(p == [2] for p in picks)
    weighted = CopyPasteSpec(**{**EXACT, "class_weights": {1: 1.0, 2: 20.0}})
    picks = [copy_paste(target, [source], np.random.default_rng(s), weighted).instances.category_ids.tolist()
             for s in range(40)]
    assert sum(p == [2] for p in picks) > 30


def test_box_only_instances_are_not_pasted_and_nothing_to_paste_returns_the_target():
    size = (48, 64)
    source = make([box(size, 0, 8, 0, 8)], [1], [(1, 1, 1)], size)
    source = source.replace(instances=Instances(source.instances.masks, [1],
                                                attributes={"approximate": np.array([True])}))
    target = make([box(size, 5, 15, 5, 15)], [1], [(250, 250, 250)], size)
    assert copy_paste(target, [source], np.random.default_rng(0), CopyPasteSpec(**EXACT)) is target


def test_scale_jitter_keeps_mask_and_pixels_together():
    size = (48, 64)
    source = make([blob(size)], [2], [(10, 200, 30)], size)
    target = make([], [], [], size, background=0)
    spec = CopyPasteSpec(**{**EXACT, "scale": (0.6, 1.4)})
    for seed in range(5):
        out = copy_paste(target, [source], np.random.default_rng(seed), spec)
        mask = out.instances.masks[0]
        assert (out.image[mask] == (10, 200, 30)).all()  # hard paste of a one-colour instance
        assert mask.sum() > 0 and not (out.image[~mask] == (10, 200, 30)).all(axis=-1).any()
