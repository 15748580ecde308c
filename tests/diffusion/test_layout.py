"""The layout comes from the compositor, and the control maps are drawn from its masks."""

import numpy as np
import pytest

from diffusion_helpers import REPO
from vision_synth.diffusion.check import dilate
from vision_synth.diffusion.layout import PALETTE, category_colors, edge_map, scene_layout, segmentation_map
from vision_synth.types import Instances


@pytest.fixture(scope="module")
def compositor():
    from vision_synth.config import DatasetConfig, find_scene, load_scene
    from vision_synth.scene.compositor import Compositor

    scene = load_scene(find_scene("surface_defects", REPO / "configs"))
    config = DatasetConfig(name="t", seed=2, num_images=8, image={"width": 96, "height": 96}, scene=scene)
    return Compositor(config)


@pytest.mark.parametrize("index", range(6))
def test_layout_is_the_compositors_scene_on_its_own_background(compositor, index):
    sample = compositor.sample(index)
    layout = scene_layout(compositor, index)
    assert np.array_equal(layout.composite, sample.image)
    assert np.array_equal(layout.instances.masks, sample.instances.masks)
    assert layout.background_name == sample.provenance.background
    # the background drawn again is the one the scene was pasted on: away from the instances
    # (soft defect edges reach a little past their masks) the two agree pixel for pixel
    away = ~dilate(layout.instances.masks.any(axis=0), 12) if len(layout.instances) else np.ones((96, 96), bool)
    same = (layout.composite == layout.background).all(axis=2)
    assert same[away].mean() > 0.99


def two_squares():
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 2:12, 2:12] = True
    masks[1, 16:30, 16:30] = True
    return Instances(masks, [1, 3])


def test_segmentation_map_fills_masks_with_category_colours():
    inst = two_squares()
    colors = category_colors([1, 3], {3: (9, 8, 7)})
    seg = segmentation_map(inst, colors)
    assert (seg[inst.masks[0]] == PALETTE[0]).all()
    assert (seg[inst.masks[1]] == (9, 8, 7)).all()
    assert (seg[~inst.masks.any(axis=0)] == 0).all()


def test_edge_map_draws_only_outlines():
    inst = two_squares()
    edges = edge_map(inst)[..., 0] > 0
    assert edges[2, 5] and edges[16, 20]  # on the borders
    assert not edges[7, 7] and not edges[23, 23]  # not inside
    assert not edges[0:1, 20:].any()  # not far away
