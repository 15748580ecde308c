"""The example configs validate, and on a machine without the models stop at a clear message."""

import pytest
import yaml

from diffusion_helpers import REPO, config_class
from vision_synth.errors import VisionSynthError

EXAMPLES = sorted((REPO / "configs").glob("diffusion_*.yaml"))


def load_example(path):
    from vision_synth.config import DatasetConfig, find_scene, load_config, load_scene

    if "diffusion" in DatasetConfig.model_fields:  # config.py knows `diffusion:`
        return load_config(path)
    data = yaml.safe_load(path.read_text())
    data["scene"] = load_scene(find_scene(data["scene"], path.parent))
    return config_class().model_validate(data)


def test_there_are_examples_of_every_mode():
    modes = {yaml.safe_load(p.read_text())["diffusion"]["mode"] for p in EXAMPLES}
    assert modes == {"inpaint-insert", "layout-to-image", "refine"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_and_names_the_missing_model(path, empty_hub_cache, no_network):
    from vision_synth.diffusion import DiffusionGenerator

    config = load_example(path)
    assert config.generator == "diffusion"
    with pytest.raises(VisionSynthError, match=rf"^diffusion.model '{config.diffusion.model}': not found on this machine"):
        DiffusionGenerator(config)


# the published layouts of the repos the shipped configs name (tiny weights, real file names)
PUBLISHED = {
    "stable-diffusion-v1-5/stable-diffusion-inpainting": ("inpaint", "bin", ("fp16",)),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": ("base", "both", ("fp16",)),
    "lllyasviel/control_v11p_sd15_canny": ("controlnet", "bin", ("fp16",)),  # .bin, .fp16.bin, .fp16.safetensors
}


@pytest.fixture(scope="module")
def published_cache(tiny_models, tmp_path_factory):
    """A Hugging Face cache holding the shipped configs' repos as they are published."""
    import shutil

    from diffusion_helpers import add_safety_checker, publish_like_hub

    cache = tmp_path_factory.mktemp("published_cache")
    commit = "0123456789abcdef0123456789abcdef01234567"
    for repo, (kind, fp32, variants) in PUBLISHED.items():
        root = cache / f"models--{repo.replace('/', '--')}"
        staged = tmp_path_factory.mktemp("staged") / "model"
        shutil.copytree(getattr(tiny_models, kind), staged)
        if kind != "controlnet":
            add_safety_checker(staged)
        publish_like_hub(staged, root / "snapshots" / commit, fp32=fp32, variants=variants)
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text(commit)
    return cache


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_configs_load_the_repos_as_published(path, published_cache, monkeypatch, no_network):
    import pickle

    import huggingface_hub.constants
    import torch

    from vision_synth.diffusion import DiffusionGenerator

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(published_cache))

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    config = load_example(path)
    generator = DiffusionGenerator(config.model_copy(update={"diffusion": config.diffusion.model_copy(
        update={"device": "cpu"})}))
    assert generator.loaded.variant == "fp16"
    if config.diffusion.controlnet:
        assert generator.loaded.controlnet_variant == "fp16"
    # the defect config runs without the safety checker; the others keep it
    assert (generator.loaded.pipe.safety_checker is None) == (config.diffusion.mode == "inpaint-insert")
