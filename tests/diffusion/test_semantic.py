"""The optional semantic check: a local CLIP model scores each kept instance against every
category's prompt; without a model the run stops with one line."""

import numpy as np
import pytest

from diffusion_helpers import TINY_CLIP, dataset_config
from vision_synth.diffusion.spec import SemanticSpec
from vision_synth.errors import VisionSynthError


@pytest.fixture(scope="module")
def tiny_clip_model(tmp_path_factory):
    """A random CLIP of 32-wide layers with the tiny test vocabulary, saved as a local folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from vision_synth.diffusion.tiny import build_seeded, tiny_tokenizer

    tokenizer = tiny_tokenizer(TINY_CLIP)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=32, patch_size=8), projection_dim=32)
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    build_seeded(lambda: CLIPModel(config), 0, 9).save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_missing_clip_model_is_one_clear_line(tiny_models, empty_hub_cache, no_network):
    from vision_synth.diffusion import DiffusionGenerator

    config = dataset_config(tiny_models, "inpaint-insert", check={"semantic": {"model": "nobody/no-clip"}})
    with pytest.raises(VisionSynthError) as err:
        DiffusionGenerator(config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("diffusion.check.semantic.model 'nobody/no-clip': not found on this machine")
    assert "the semantic check needs a CLIP model" in message and "remove check.semantic" in message


def test_probabilities_over_the_categories(tiny_clip_model):
    from vision_synth.diffusion.semantic import SemanticCheck

    check = SemanticCheck(SemanticSpec(model=str(tiny_clip_model)), {1: "a scratch", 2: "a stain", 3: "a crack"})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 4:20, 4:30] = True
    masks[1, 40:60, 30:50] = True
    probs = check.probabilities(image, masks)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("own, expected", [(0.9, True), (0.2, False)])
def test_an_instance_is_kept_when_its_own_category_wins(tiny_clip_model, monkeypatch, own, expected):
    from vision_synth.diffusion.semantic import SemanticCheck

    check = SemanticCheck(SemanticSpec(model=str(tiny_clip_model), min_probability=0.5), {1: "a scratch", 3: "a crack"})
    # the model's verdict, fixed: category 3 gets `own`, category 1 the rest
    monkeypatch.setattr(check, "probabilities", lambda image, masks: np.array([[1 - own, own]] * len(masks)))
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 2:8, 2:8] = True
    keep = check.agrees(np.zeros((16, 16, 3), np.uint8), masks, np.array([3, 3, 3]), np.array([True, True, False]))
    assert keep.tolist() == [expected, expected, False]  # an instance already dropped stays dropped


def test_generator_drops_what_the_semantic_check_rejects(tiny_models, tiny_clip_model):
    from vision_synth.diffusion import DiffusionGenerator

    def run(min_probability):
        semantic = {"model": str(tiny_clip_model), "min_probability": min_probability}
        generator = DiffusionGenerator(dataset_config(tiny_models, "inpaint-insert",
                                                      check={"min_agreement": 0.0, "semantic": semantic}))
        return generator.generate([0])[0]

    everything = run(0.0)  # every probability is at least 0
    assert everything.counts.kept == everything.counts.planned > 0
    nothing = run(1.0)  # six categories: no softmax gives one of them everything
    assert nothing.counts.kept == 0 and nothing.counts.rejected == nothing.counts.planned
    assert np.array_equal(nothing.sample.image, nothing.layout.background)
