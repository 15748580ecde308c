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
