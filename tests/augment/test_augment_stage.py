"""The augmentation stage keeps labels exact: boxes are mask extents, areas pixel counts, masks move
with the pixels, COCOeval of the output against itself is AP 1.0, and runs are reproducible."""

import numpy as np
import pytest

from helpers import check_coco_labels, coco_self_eval, synthetic_samples, write_coco_dataset
from vision_synth import masks as mask_ops
from vision_synth.augment import AugmentRules, AugmentSpec, augment_sample, augmented_copies, output_index, source_of
from vision_synth.augment.albu import load_pipeline
from vision_synth.seeding import rng_for
from vision_synth.types import Instances, Provenance, Sample

H, W = 64, 80
# albumentations' own serialization format; interpolation 0 (nearest) for the image as well, so that
# "the mask moved with the pixels" can be checked pixel for pixel
TRANSFORMS = {
    "Rotate": {"limit": [-40, 40], "interpolation": 0},
    "Affine": {"rotate": [-30, 30], "scale": [0.7, 1.3], "shear": [-10, 10], "translate_percent": [-0.1, 0.1],
               "interpolation": 0},
    "Perspective": {"scale": [0.05, 0.12], "interpolation": 0},
    "ElasticTransform": {"alpha": 40, "sigma": 5, "interpolation": 0},
    "GridDistortion": {"num_steps": 4, "distort_limit": 0.4, "interpolation": 0},
    "RandomResizedCrop": {"size": [H, W], "scale": [0.3, 1.0], "interpolation": 0},
    "HorizontalFlip": {"p": 0.5},
    "HueSaturationValue": {"hue_shift_limit": 20, "sat_shift_limit": 30, "val_shift_limit": 20},
}
COLOUR = {"HueSaturationValue"}


def pipeline_dict(name: str) -> dict:
    transform = {"__class_fullname__": name, "p": 1.0, **TRANSFORMS[name]}
    return {"__version__": "2.0.8",
            "transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [transform]}}


def run(samples, name, seed_shift=0, copies=2, reverse=False):
    spec = AugmentSpec(pipeline=pipeline_dict(name), copies=copies, keep_originals=False, min_area=1)
    pipeline = spec.load_pipeline()
    order = list(reversed(samples)) if reverse else samples
    outs = [o for s in order for o in augmented_copies(s.replace(seed=s.seed + seed_shift), pipeline, spec)]
    return sorted(outs, key=lambda s: s.index)


@pytest.fixture(scope="module")
def samples():
    """Small samples whose instances carry their row number, so outputs can be traced to inputs."""
    out = []
    for s in synthetic_samples(n_images=4, size=(H, W)):
        rows = {"row": np.arange(len(s.instances))}
        out.append(s.replace(instances=Instances(s.instances.masks, s.instances.category_ids, attributes=rows)))
    return out


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_labels_stay_exact(name, samples, tmp_path):
    outs = run(samples, name)
    assert [s.index for s in outs] == list(range(len(samples) * 2))
    for out in outs:
        inst = out.instances
        assert len(inst.masks) == len(inst.category_ids) == len(inst.boxes) == len(inst.areas)
        assert inst.boxes.tolist() == mask_ops.derive_boxes(inst.masks).tolist()
        assert inst.areas.tolist() == [int(m.sum()) for m in inst.masks]
        assert (inst.areas > 0).all()
        assert out.provenance.synthetic and out.provenance.stages == ("augment",)
    annotations, _ = write_coco_dataset(tmp_path / "out", outs)
    data = check_coco_labels(annotations)
    assert len(data["annotations"]) == sum(len(s.instances) for s in outs)
    assert coco_self_eval(annotations, "bbox") == 1.0
    assert coco_self_eval(annotations, "segm") == 1.0


@pytest.mark.parametrize("name", sorted(set(TRANSFORMS) - COLOUR))
def test_masks_move_with_the_pixels(name, samples):
    # every instance is painted in one colour, so under nearest resampling each pixel of a moved mask
    # must still show exactly that colour
    for out in run(samples, name):
        source = samples[out.index // 2]
        colours = [source.image[m][0] for m in source.instances.masks]
        for mask, row in zip(out.instances.masks, out.instances.attributes["row"]):
            assert (out.image[mask] == colours[row]).all()


@pytest.mark.parametrize("name", sorted(COLOUR))
def test_colour_transforms_leave_masks_untouched(name, samples):
    outs = run(samples, name, copies=1)
    for sample, out in zip(samples, outs):
        assert np.array_equal(out.instances.masks, sample.instances.masks)
        assert np.array_equal(out.instances.category_ids, sample.instances.category_ids)
        assert not np.array_equal(out.image, sample.image)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_one_seed_gives_one_result_in_any_order(name, samples):
    first, again = run(samples, name), run(samples, name, reverse=True)  # fresh pipeline, other order
    other = run(samples, name, seed_shift=1)
    for a, b in zip(first, again):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.instances.masks, b.instances.masks)
    assert any(not np.array_equal(a.image, c.image) for a, c in zip(first, other))


def block_sample(size=(64, 64)):
    """A 40×40 block and a 3×3 dot on a grey background."""
    image = np.full((*size, 3), 100, np.uint8)
    masks = np.zeros((2, *size), bool)
    masks[0, 10:50, 10:50] = True
    masks[1, 55:58, 55:58] = True
    image[masks[0]] = (200, 30, 30)
    image[masks[1]] = (30, 200, 30)
    inst = Instances(masks, [1, 2], attributes={"source": np.array(["real", "real"], dtype=object)})
    return Sample(0, 0, image, inst, Provenance("test", synthetic=False))


def affine(**params):
    return load_pipeline({"__class_fullname__": "Compose", "p": 1.0, "transforms": [
        {"__class_fullname__": "Affine", "p": 1.0, **params}]})


def test_min_area_drops_mask_box_and_attributes_together():
    sample = block_sample()
    # Halved with nearest-neighbour masks, the 3×3 dot keeps 1 to 4 pixels (at most 2×2: output pixels
    # sample the input every 2 pixels), depending on where the grid falls; the block keeps ~400.
    out = augment_sample(sample, affine(scale=[0.5, 0.5]), rng_for(0, 0, 0), AugmentRules(min_area=5))
    assert out.instances.category_ids.tolist() == [1]
    assert len(out.instances.masks) == len(out.instances.boxes) == len(out.instances.attributes["source"]) == 1
    assert out.instances.boxes.tolist() == mask_ops.derive_boxes(out.instances.masks).tolist()
    kept = augment_sample(sample, affine(scale=[0.5, 0.5]), rng_for(0, 0, 0), AugmentRules(min_area=1))
    assert kept.instances.category_ids.tolist() == [1, 2]


def test_min_visible_fraction_drops_instances_pushed_out_of_the_frame():
    sample = block_sample()
    shift = affine(translate_px={"x": [-35, -35], "y": [0, 0]})  # 15 of the block's 40 columns stay
    loose = augment_sample(sample, shift, rng_for(0, 0, 0), AugmentRules(min_area=1, min_visible_fraction=0.3))
    strict = augment_sample(sample, shift, rng_for(0, 0, 0), AugmentRules(min_area=1, min_visible_fraction=0.5))
    assert loose.instances.areas.tolist() == [15 * 40, 9]
    assert strict.instances.category_ids.tolist() == [2]


def test_overlapping_masks_and_amodal_masks_follow_the_pixels():
    sample = block_sample()
    masks = sample.instances.masks.copy()
    masks[1, 40:58, 40:58] = True  # now overlaps the block
    inst = Instances(masks, [1, 2], amodal_masks=masks, attributes={"occlusion": np.zeros(2, np.float32)})
    out = augment_sample(sample.replace(instances=inst), affine(rotate=[30, 30]), rng_for(0, 0, 0),
                         AugmentRules(min_area=1))
    alone = augment_sample(sample.replace(instances=inst[[0]]), affine(rotate=[30, 30]), rng_for(0, 0, 0),
                           AugmentRules(min_area=1))
    assert np.array_equal(out.instances.masks[0], alone.instances.masks[0])
    assert (out.instances.masks[0] & out.instances.masks[1]).any()  # overlap kept through the warp
    assert np.array_equal(out.instances.amodal_masks, out.instances.masks)


def test_empty_images_are_kept_or_dropped():
    sample = block_sample()
    away = {"__class_fullname__": "Affine", "p": 1.0, "translate_px": {"x": [200, 200], "y": [0, 0]}}
    for drop in (False, True):
        spec = AugmentSpec(pipeline={"__class_fullname__": "Compose", "p": 1.0, "transforms": [away]},
                           copies=1, keep_originals=True, drop_empty=drop)
        outs = augmented_copies(sample, spec.load_pipeline(), spec)
        assert [len(o.instances) for o in outs] == ([2] if drop else [2, 0])


@pytest.mark.parametrize("copies, keep, index, copy, expected", [
    (1, False, 0, 0, 0), (1, False, 5, 0, 5), (3, False, 2, 1, 7), (2, True, 0, None, 0), (2, True, 0, 0, 1),
    (2, True, 4, 1, 14), (1, True, 3, None, 6)])
def test_output_index_scheme(copies, keep, index, copy, expected):
    spec = AugmentSpec(pipeline=pipeline_dict("HorizontalFlip"), copies=copies, keep_originals=keep)
    assert output_index(index, copy, spec) == expected
    assert source_of(expected, spec) == (index, copy)
