"""Texture backgrounds from the bank or drawn anew: the choice changes the background pixels only,
never the instances (the background has its own stream of the sample)."""

from pathlib import Path

import numpy as np
import pytest

from vision_synth.config import DatasetConfig, find_scene, load_scene
from vision_synth.scene.compositor import Compositor
from vision_synth.scene.textures import make_texture
from vision_synth.seeding import BACKGROUND_STREAM, rng_for

REPO = Path(__file__).resolve().parents[2]


def compositor(bank: bool, seed: int = 2) -> Compositor:
    scene = load_scene(find_scene("surface_defects", REPO / "configs")).model_copy(deep=True)
    scene = scene.model_copy(update={"background": scene.background.model_copy(update={"bank": bank})})
    return Compositor(DatasetConfig(name="t", seed=seed, num_images=8, image={"width": 96, "height": 80}, scene=scene))


@pytest.fixture(scope="module")
def pair():
    return compositor(bank=True), compositor(bank=False)


def test_the_bank_is_the_default():
    from vision_synth.config import TextureBackground

    assert TextureBackground().bank and compositor(bank=True).backgrounds.bank is not None
    assert compositor(bank=False).backgrounds.bank is None


@pytest.mark.parametrize("index", range(6))
def test_the_bank_changes_the_background_only(pair, index):
    banked, fresh = (c.layout(index) for c in pair)
    assert np.array_equal(banked.instances.masks, fresh.instances.masks)
    assert np.array_equal(banked.instances.category_ids, fresh.instances.category_ids)
    assert banked.background_name == fresh.background_name  # the same texture, drawn two ways
    assert not np.array_equal(banked.background, fresh.background)


@pytest.mark.parametrize("index", range(3))
def test_without_the_bank_every_texture_is_drawn_anew(pair, index):
    layout = pair[1].layout(index)
    rng = rng_for(2, index, BACKGROUND_STREAM)
    textures = pair[1].backgrounds.textures
    name = textures[int(rng.integers(len(textures)))]
    assert layout.background_name == f"texture:{name}"
    assert np.array_equal(layout.background, make_texture(name, rng, 80, 96))


def test_backgrounds_of_a_banked_run_differ_from_sample_to_sample(pair):
    backgrounds = [pair[0].layout(i).background for i in range(8)]
    assert len({b.tobytes() for b in backgrounds}) == 8


def test_the_bank_is_built_for_one_image_size(pair):
    with pytest.raises(ValueError, match="built for 80×96"):
        pair[0].backgrounds.draw(rng_for(0, 0), 64, 64)
