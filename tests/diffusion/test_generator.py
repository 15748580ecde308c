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
        assert r.sample.provenance.stages == (
            f"diffusion-check:kept=0,rejected={r.counts.planned},flagged=0,nan=0,redrawn=0,upcast=0",)
    assert generator.counts.rejected == sum(r.counts.planned for r in results) > 0


def test_refined_masks_are_within_the_plan_and_counted(tiny_models):
    config = dataset_config(tiny_models, "inpaint-insert", num_images=8, refine_masks=True, check={"min_difference": 12,
                                                                                    "min_agreement": 0.0})
    # the tiny random model's output stands out from its own noise floor for a few instances only:
    # eight samples hold some (samples 0-2 of this seed hold none since the texture bank)
    results = DiffusionGenerator(config).generate(list(range(8)))
    sizes = []
    for r in results:
        plan = r.layout.instances
        for j, k in enumerate(r.kept):
            mask = r.sample.instances.masks[j]
            assert mask.any() and not (mask & ~plan.masks[k]).any()
            # agreement of a refined label: the share of the plan it covers
            assert r.agreement[k] == pytest.approx(mask.sum() / plan.masks[k].sum())
            sizes.append(mask.sum() / plan.masks[k].sum())
        assert r.counts.planned == r.counts.kept + r.counts.rejected
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

    # eight samples: the first four of this seed hold no instance the tiny model keeps in inpaint-insert
    config = dataset_config(tiny_models, mode, num_images=8, check={"min_agreement": 0.05})
    summary = generate(config, tmp_path / "out", show_progress=False)
    ann = tmp_path / "out" / "annotations.json"
    data = check_coco_labels(ann)
    assert summary.images == 8 and len(data["images"]) == 8
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


def flag_draws(pipe, flagged):
    """Give the pipeline a safety checker that flags draw d (counting calls) when flagged(d)."""
    calls = []

    def check(image, device, dtype):
        calls.append(len(image))
        return image * 0, [flagged(len(calls) - 1)] * len(image)

    pipe.safety_checker = object()
    pipe.run_safety_checker = check
    return calls


@pytest.mark.parametrize("mode", ["inpaint-insert", "refine"])
def test_flagged_every_draw_is_never_written_black(tiny_models, mode):
    generator = DiffusionGenerator(dataset_config(tiny_models, mode, max_redraws=2))
    flag_draws(generator.loaded.pipe, lambda d: True)
    results = generator.generate([0, 1])
    for r in results:
        c = r.counts
        assert c.flagged == c.planned > 0 and c.rejected == c.kept == 0
        if mode == "inpaint-insert":  # the instances are dropped, the sample is the background
            assert len(r.sample.instances) == 0 and np.array_equal(r.sample.image, r.layout.background)
            assert c.redrawn == 2 * c.planned  # each instance's job drawn twice more
        else:  # the whole image failed: skipped, not written
            assert r.sample is None and c.skipped == 1 and c.redrawn == 2
    assert generator.counts.flagged == sum(r.counts.planned for r in results)
    if mode == "refine":
        assert generator.samples([0, 1]) == []  # the runner writes none of them


def test_a_flagged_draw_is_redrawn_with_the_next_seed_of_its_stream(tiny_models, generated):
    mode = "refine"
    _, first = generated[mode]
    generator = DiffusionGenerator(dataset_config(tiny_models, mode))
    flag_draws(generator.loaded.pipe, lambda d: d == 0)  # only the very first draw is flagged
    again = generator.generate([0])[0]
    assert again.counts.redrawn == 1 and again.counts.flagged == 0 and again.sample is not None
    assert not np.array_equal(again.sample.image, first[0].sample.image)  # another seed
    assert again.sample.provenance.stages[0].endswith("redrawn=1,upcast=0")
    repeat = DiffusionGenerator(dataset_config(tiny_models, mode))
    flag_draws(repeat.loaded.pipe, lambda d: d == 0)
    assert np.array_equal(repeat.generate([0])[0].sample.image, again.sample.image)  # the same next seed


def test_provenance_names_what_the_image_was_painted_on(generated):
    assert generated["layout-to-image"][1][0].sample.provenance.background == "generated"
    assert generated["refine"][1][0].sample.provenance.background.startswith("texture:")


# ------------------------------------------------------------------ fake pipelines: the verdicts
def fake_generator(tiny_models, draw, size=96, **kwargs):
    from diffusion_helpers import FakeInpaintPipeline, with_pipeline

    changes = {"check": {"min_agreement": 0.5}, **kwargs.pop("changes", {})}
    generator = DiffusionGenerator(dataset_config(tiny_models, "inpaint-insert", size=size, **changes))
    return with_pipeline(generator, FakeInpaintPipeline(draw, **kwargs))


def test_a_model_that_retextures_everywhere_is_rejected(tiny_models):
    from diffusion_helpers import retexture_everywhere

    results = fake_generator(tiny_models, retexture_everywhere).generate(INDICES)
    assert sum(r.counts.planned for r in results) > 5
    for r in results:
        assert r.counts.kept == 0 and r.counts.rejected == r.counts.planned
        assert np.array_equal(r.sample.image, r.layout.background)


def test_a_model_that_inserts_a_distinct_object_is_kept(tiny_models):
    from diffusion_helpers import insert_distinct_object

    results = fake_generator(tiny_models, insert_distinct_object).generate(INDICES)
    planned = sum(r.counts.planned for r in results)
    assert planned > 5 and sum(r.counts.kept for r in results) == planned
    for r in results:
        outside = ~r.layout.instances.masks.any(axis=0)
        assert np.array_equal(r.sample.image[outside], r.layout.background[outside])


def test_small_instances_are_inpainted_in_crops_at_the_models_resolution(tiny_models):
    from diffusion_helpers import insert_distinct_object

    generator = fake_generator(tiny_models, insert_distinct_object, size=96)
    r = generator.generate([0])[0]
    calls = generator.loaded.pipe.calls
    assert len(calls) == r.counts.planned  # one job per instance (one per call on CPU)
    for call, mask in zip(calls, r.layout.instances.masks):
        assert call["image"].shape == (1, 64, 64, 3) and call["height"] == call["width"] == 64
        window = __import__("vision_synth.diffusion.crops", fromlist=["crop_window"]).crop_window(mask, 1.0)
        # the instance fills a good part of its crop: far more than of the whole frame
        assert call["mask_image"].mean() > 1.5 * mask.mean() or window.side == 96
    # pasted back feathered: the mask's edge is a blend, its interior the object, outside untouched
    from vision_synth.diffusion.crops import feather_alpha

    checked = 0
    for mask in r.sample.instances.masks:
        alpha = feather_alpha(mask, generator.spec.feather)
        edge, inner = mask & (alpha < 1), alpha == 1
        red = lambda pixels: (np.abs(pixels.astype(int) - (242, 26, 26)) <= 4).all(axis=1)  # noqa: E731
        if inner.any() and edge.any():
            assert red(r.sample.image[inner]).mean() > 0.9  # the object, at full opacity
            assert not red(r.sample.image[edge]).all()  # the edge: blended with the background
            between = r.sample.image[edge].astype(int)
            assert (between[:, 0] > r.layout.background[edge][:, 0]).mean() > 0.5
            checked += 1
    assert checked > 0


def test_any_image_size_inpaints(tiny_models):
    # 70 is no multiple of the VAE's factor: crops are resized to the model's size, never padded
    results = DiffusionGenerator(dataset_config(tiny_models, "inpaint-insert", size=70)).generate([0])
    assert results[0].sample.image.shape == (70, 70, 3) and results[0].counts.planned > 0


def test_nan_decode_is_retried_with_the_vae_in_float32(tiny_models):
    import torch

    from diffusion_helpers import insert_distinct_object

    generator = fake_generator(tiny_models, insert_distinct_object, vae_dtype=torch.float16, nan_in=(torch.float16,))
    r = generator.generate([0])[0]
    assert r.counts.upcast == r.counts.planned > 0 and r.counts.nan == 0 and r.counts.kept == r.counts.planned
    assert torch.float32 in generator.loaded.pipe.vae.decodes
    assert generator.loaded.pipe.vae.dtype == torch.float16  # put back after the retry
    assert r.sample.image.max() > 200  # the object's red, not the black of a cast NaN


def test_nan_on_every_draw_is_skipped_and_counted_never_labelled(tiny_models):
    import torch

    from diffusion_helpers import insert_distinct_object

    generator = fake_generator(tiny_models, insert_distinct_object, vae_dtype=torch.float16,
                               nan_in=(torch.float16, torch.float32), changes={"max_redraws": 1})
    r = generator.generate([0])[0]
    assert r.counts.nan == r.counts.planned > 0 and r.counts.kept == 0 and r.counts.redrawn == r.counts.planned
    assert len(r.sample.instances) == 0 and np.array_equal(r.sample.image, r.layout.background)


def test_dataset_card_counts_what_the_check_and_the_guards_did(tiny_models, tmp_path, monkeypatch, no_network):
    import re

    import vision_synth.diffusion.generator as gen
    from vision_synth.runner import generate

    real = gen.call_pipeline

    def flag_sample_1(pipe, spec, jobs, *args, **kwargs):  # every draw of sample 1's image is flagged
        results = real(pipe, spec, jobs, *args, **kwargs)
        return [gen.JobResult(None, "flagged") if j.index == 1 else r for j, r in zip(jobs, results)]

    monkeypatch.setattr(gen, "call_pipeline", flag_sample_1)
    config = dataset_config(tiny_models, "refine", num_images=4, max_redraws=1)
    generate(config, tmp_path / "out", show_progress=False)
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert sorted(im["id"] for im in data["images"]) == [1, 3, 4]  # sample 1 not written (never black)
    card = (tmp_path / "out" / "dataset_card.md").read_text()
    row = re.search(r"^\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", card, re.M)
    planned, kept, rejected, flagged, nan = map(int, row.groups())
    assert kept == len(data["annotations"]) and flagged == nan == 0  # a skipped sample's instances are not listed
    assert planned == kept + rejected
    assert "samples skipped (every draw of their image flagged or non-finite; never written black): 1" in card
