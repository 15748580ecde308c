"""DiffusionGenerator with tiny random models on CPU: shapes, labels inside the plan, the check,
determinism, batch independence, and a full run through the runner into COCO."""

import json

import numpy as np
import pytest

from helpers import check_coco_labels, coco_self_eval
from diffusion_helpers import dataset_config
from vision_synth.diffusion import DiffusionGenerator
from vision_synth.errors import ConfigError

MODES = ["inpaint-insert", "layout-to-image", "refine"]
INDICES = [0, 1, 2]


@pytest.fixture(scope="module")
def generated(tiny_models):
    """Samples 0-2 of each mode, made once for the module."""
    out = {}
    for mode in MODES:
        generator = DiffusionGenerator(dataset_config(tiny_models, mode))
        out[mode] = (generator, generator.generate(INDICES))
    return out


def images(results):
    return [r.sample.image for r in results]


@pytest.mark.parametrize("mode", MODES)
def test_samples_have_the_image_shape_and_provenance(generated, mode):
    generator, results = generated[mode]
    for index, r in zip(INDICES, results):
        s = r.sample
        assert s.index == index and s.seed == 5
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        prov = s.provenance
        assert prov.generator == f"diffusion:{mode}" and prov.synthetic
        assert prov.model == generator.loaded.model and prov.model_hash == generator.loaded.model_hash
        assert prov.prompt and prov.stages[0].startswith("diffusion-check:")
    assert generator.batch_size == 3


@pytest.mark.parametrize("mode", MODES)
def test_every_label_lies_inside_its_planned_region(generated, mode):
    _, results = generated[mode]
    planned_total = 0
    for r in results:
        plan, inst = r.layout.instances, r.sample.instances
        assert len(inst) == len(r.kept) == r.counts.kept
        for j, k in enumerate(r.kept):
            assert inst.category_ids[j] == plan.category_ids[k]
            assert not (inst.masks[j] & ~plan.masks[k]).any()
            assert inst.masks[j].any()
            assert inst.attributes["agreement"][j] == pytest.approx(r.agreement[k], nan_ok=True)
        c = r.counts
        assert c.planned == len(plan) == c.kept + c.rejected + c.flagged
        planned_total += c.planned
    assert planned_total > 5  # the scene planned something to check


def test_inpaint_changes_pixels_only_inside_kept_instances(generated):
    _, results = generated["inpaint-insert"]
    for r in results:
        outside = ~r.sample.instances.masks.any(axis=0)
        assert np.array_equal(r.sample.image[outside], r.layout.background[outside])
        for mask in r.sample.instances.masks:  # and inside, something was painted
            assert (r.sample.image[mask] != r.layout.background[mask]).any()
        assert set(r.sample.instances.attributes["source"]) <= {"diffusion"}


def test_refine_keeps_the_layouts_masks(generated):
    _, results = generated["refine"]
    for r in results:
        assert np.array_equal(r.sample.instances.masks, r.layout.instances.masks[r.kept])


def test_the_check_rejects_and_restores(tiny_models):
    # nothing can differ by more than 255: every instance fails the check, and its pixels go
    # back to the background, so no unlabelled object is left in the image
    config = dataset_config(tiny_models, "inpaint-insert", check={"min_difference": 255, "min_agreement": 0.1})
    generator = DiffusionGenerator(config)
    results = generator.generate(INDICES)
    for r in results:
        assert len(r.sample.instances) == 0 and r.counts.rejected == r.counts.planned
        assert np.array_equal(r.sample.image, r.layout.background)
        assert r.sample.provenance.stages == (f"diffusion-check:kept=0,rejected={r.counts.planned},flagged=0",)
    assert generator.counts.rejected == sum(r.counts.planned for r in results) > 0


def test_refined_masks_are_within_the_plan_and_counted(tiny_models):
    config = dataset_config(tiny_models, "inpaint-insert", refine_masks=True,
                            check={"min_difference": 40, "min_agreement": 0.6})
    results = DiffusionGenerator(config).generate(INDICES)
    sizes = []
    for r in results:
        plan = r.layout.instances
        for j, k in enumerate(r.kept):
            mask = r.sample.instances.masks[j]
            assert not (mask & ~plan.masks[k]).any()
            assert mask.sum() >= 0.6 * plan.masks[k].sum()  # kept: covers enough of the plan
            sizes.append(mask.sum() / plan.masks[k].sum())
        assert r.counts.planned == r.counts.kept + r.counts.rejected
        # rejected instances are covered by their agreement: below the threshold
        rejected = np.setdiff1d(np.arange(len(plan)), r.kept)
        assert (r.agreement[rejected] < 0.6).all()
    assert sizes and min(sizes) < 1.0  # refinement did trim some masks


def test_generated_background(tiny_models):
    config = dataset_config(tiny_models, "inpaint-insert", background="generated",
                            scene_prompt={"prompt": "a photo of a brushed metal surface"})
    results = DiffusionGenerator(config).generate([0])
    r = results[0]
    assert r.sample.provenance.prompt.startswith("background: a photo of a brushed metal surface")
    outside = ~r.sample.instances.masks.any(axis=0)
    assert not np.array_equal(r.sample.image[outside], r.layout.background[outside])


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_pixels(generated, tiny_models, mode):
    _, first = generated[mode]
    again = DiffusionGenerator(dataset_config(tiny_models, mode)).generate(INDICES)
    for a, b in zip(first, again):
        assert np.array_equal(a.sample.image, b.sample.image)
        assert np.array_equal(a.sample.instances.masks, b.sample.instances.masks)
    other = DiffusionGenerator(dataset_config(tiny_models, mode, seed=6)).generate([0])
    assert not np.array_equal(other[0].sample.image, first[0].sample.image)


@pytest.mark.parametrize("mode", MODES)
def test_samples_do_not_depend_on_batch_size(generated, tiny_models, mode):
    _, batch3 = generated[mode]
    one = DiffusionGenerator(dataset_config(tiny_models, mode, batch_size=1))
    batch1 = [one.generate([i])[0] for i in INDICES]
    for a, b in zip(batch3, batch1):
        assert np.array_equal(a.sample.image, b.sample.image)
        assert np.array_equal(a.sample.instances.masks, b.sample.instances.masks)
    # and not on which samples share a call
    assert np.array_equal(one.generate([2, 0])[0].sample.image, batch3[2].sample.image)


def test_batched_pipeline_calls_match_single_ones(generated, tiny_models):
    """Three jobs in one pipeline call (the CUDA path) against one job per call: each job has its
    own generator, so they agree up to float rounding (BLAS/oneDNN pick kernels by batch size,
    ~1e-6), i.e. at most a level or two in a few uint8 values."""
    mode = "layout-to-image"
    _, single = generated[mode]
    batched = DiffusionGenerator(dataset_config(tiny_models, mode), jobs_per_call=3).generate(INDICES)
    for a, b in zip(single, batched):
        diff = np.abs(a.sample.image.astype(int) - b.sample.image.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.01


def test_prompts_must_cover_the_scene(tiny_models):
    from diffusion_helpers import PROMPTS

    partial = {k: v for k, v in PROMPTS.items() if k != "dent"}
    with pytest.raises(ConfigError, match=r"diffusion.prompts: no prompt for category 'dent'"):
        DiffusionGenerator(dataset_config(tiny_models, "inpaint-insert", prompts=partial))
    with pytest.raises(ConfigError, match=r"diffusion.prompts: unknown category 'rust'"):
        DiffusionGenerator(dataset_config(tiny_models, "refine", prompts={**PROMPTS, "rust": {"prompt": "rust"}}))


def test_image_size_must_suit_the_vae(tiny_models):
    with pytest.raises(ConfigError, match="multiples of 2"):
        DiffusionGenerator(dataset_config(tiny_models, "refine", size=65))


def test_config_without_diffusion_section(tiny_models):
    config = dataset_config(tiny_models, "refine")
    with pytest.raises(ConfigError, match="needs a `diffusion:` section"):
        DiffusionGenerator(config.model_copy(update={"diffusion": None}))


def test_amodal_masks_survive_refine(tiny_models):
    prompts = {name: {"prompt": f"a {name} on a table"} for name in ("ball", "cube", "mug", "bottle")}
    config = dataset_config(tiny_models, "refine", scene="tabletop_objects", amodal=True, size=96,
                            prompts=prompts, check={"min_agreement": 0.0})
    results = DiffusionGenerator(config).generate([0, 1])
    assert sum(len(r.sample.instances) for r in results) > 0
    for r in results:
        inst = r.sample.instances
        assert inst.amodal_masks is not None and not (inst.masks & ~inst.amodal_masks).any()


@pytest.mark.parametrize("mode", ["inpaint-insert", "layout-to-image"])
def test_runner_writes_exact_coco(tiny_models, tmp_path, mode, no_network):
    from vision_synth.runner import generate

    config = dataset_config(tiny_models, mode, num_images=4, check={"min_agreement": 0.05})
    summary = generate(config, tmp_path / "out", show_progress=False)
    ann = tmp_path / "out" / "annotations.json"
    data = check_coco_labels(ann)
    assert summary.images == 4 and len(data["images"]) == 4
    assert data["annotations"], "the check should keep some instances"
    assert coco_self_eval(ann, "bbox") == pytest.approx(1.0)
    assert coco_self_eval(ann, "segm") == pytest.approx(1.0)
    for im in data["images"]:
        assert im["generator"] == f"diffusion:{mode}" and im["prompt"] and im["synthetic"] is True
        assert (tmp_path / "out" / "images" / im["file_name"]).is_file()
    assert {a["source"] for a in data["annotations"]} == {"diffusion"}
    # written labels are the planned ones, or inside them
    record = json.loads(ann.read_text())
    assert record["info"]["generator"] == "diffusion"


@pytest.mark.parametrize("mode", ["inpaint-insert", "refine"])
def test_images_blanked_by_the_safety_checker_lose_their_labels(tiny_models, mode):
    generator = DiffusionGenerator(dataset_config(tiny_models, mode))
    pipe = generator.loaded.pipe
    # what a pipeline's safety checker does with an image it flags: black pixels and a flag
    pipe.run_safety_checker = lambda image, device, dtype: (image * 0, [True] * len(image))
    results = generator.generate([0, 1])
    for r in results:
        assert len(r.sample.instances) == 0
        assert r.counts.flagged == r.counts.planned and r.counts.rejected == 0
        if mode == "inpaint-insert":  # nothing of a blanked job reaches the image
            assert np.array_equal(r.sample.image, r.layout.background)
    assert generator.counts.flagged == sum(r.counts.planned for r in results) > 0


def test_provenance_names_what_the_image_was_painted_on(generated):
    assert generated["layout-to-image"][1][0].sample.provenance.background == "generated"
    assert generated["refine"][1][0].sample.provenance.background.startswith("texture:")
