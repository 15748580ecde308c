"""The layout comes from the compositor's own plan, and the control maps are drawn as the
ControlNets' training data was (ADE20K palette, Canny of the image)."""

import cv2
import numpy as np
import pytest

from diffusion_helpers import REPO
from vision_synth.diffusion.ade20k import ADE20K_CLASSES, ADE20K_PALETTE, ade20k_color
from vision_synth.diffusion.layout import canny_map, category_colors, segmentation_map
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
    layout = compositor.layout(index)
    assert np.array_equal(layout.composite, sample.image)
    assert np.array_equal(layout.instances.masks, sample.instances.masks)
    assert layout.background_name == sample.provenance.background and layout.index == index
    # the background is the very one the scene was pasted on: where the composite differs from
    # it, something was pasted (instances, and the soft edges of defects just past their masks)
    from vision_synth.diffusion.check import dilate

    differs = (layout.composite != layout.background).any(axis=2)
    near = dilate(layout.instances.masks.any(axis=0), 12) if len(layout.instances) else np.zeros((96, 96), bool)
    assert not (differs & ~near).any()
    assert len(layout.instances) == 0 or differs.any()


def test_the_palette_is_ade20ks():
    assert len(ADE20K_CLASSES) == len(ADE20K_PALETTE) == 150
    assert ADE20K_CLASSES[0] == "wall" and tuple(ADE20K_PALETTE[0]) == (120, 120, 120)
    assert tuple(ade20k_color("table")) == (255, 6, 82)  # class 15 of mmseg's ADE20KDataset
    assert tuple(ade20k_color("flag")) == (92, 0, 255)  # the last


def two_squares():
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 2:12, 2:12] = True
    masks[1, 16:30, 16:30] = True
    return Instances(masks, [1, 3])


def test_segmentation_map_is_drawn_in_ade20k_colours_on_the_background_class():
    inst = two_squares()
    colors = category_colors({1: "ball", 3: "bottle"})
    seg = segmentation_map(inst, colors, ade20k_color("table"))
    assert (seg[inst.masks[0]] == ade20k_color("ball")).all()
    assert (seg[inst.masks[1]] == ade20k_color("bottle")).all()
    assert (seg[~inst.masks.any(axis=0)] == ade20k_color("table")).all()
    # every pixel holds a palette colour: nothing the ControlNet never saw (no black)
    palette = {tuple(c) for c in ADE20K_PALETTE}
    assert {tuple(c) for c in seg.reshape(-1, 3)} <= palette


def test_canny_map_is_the_edges_of_the_composited_image():
    rng = np.random.default_rng(0)
    image = np.full((48, 48, 3), 90, np.uint8)
    image[8:40, 8:40] = 200  # an object
    image[20:28, 20:28] = 40  # with a dark detail inside: an edge no mask outline has
    image = np.clip(image + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    edges = canny_map(image)
    assert edges.shape == (48, 48, 3) and set(np.unique(edges)) <= {0, 255}
    assert np.array_equal(edges[..., 0], cv2.Canny(image, 100, 200))
    assert edges[20:28, 19:21].any()  # the inner detail's edge is in the map
    assert not edges[0:4, 0:4].any()  # flat background: no edges
