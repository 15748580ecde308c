import numpy as np
import pytest

from vision_synth.scene.layers import Layer
from vision_synth.scene.placement import Request, PlacementRules, place_instances

H, W = 23, 31
FORMS = ("solid colour", "solid image", "grey maps", "colour maps", "darken only", "identity")


def make_layer(form: str, rng: np.random.Generator) -> Layer:
    """A layer of random alpha with the (gain, offset) of `form`, drawn from the test's own `rng`."""
    uniform = lambda *shape: rng.random(shape, dtype=np.float32)  # noqa: E731
    gain, offset = {
        "solid colour": lambda: (np.float32(0.0), np.array([10.0, 200.0, 90.0], np.float32)),
        "solid image": lambda: (np.float32(0.0), uniform(H, W, 3) * 255),
        "grey maps": lambda: (uniform(H, W, 1), uniform(H, W, 1) * 80),
        "colour maps": lambda: (uniform(H, W, 3), uniform(H, W, 3) * 80),
        "darken only": lambda: (uniform(H, W, 1), np.float32(0.0)),
        "identity": lambda: (np.float32(1.0), np.float32(0.0)),
    }[form]()
    return Layer(uniform(H, W), gain, offset, 1)


@pytest.mark.parametrize("form", FORMS)
def test_pasted_pixels_are_the_rounded_blend(form):
    rng = np.random.default_rng(10 + FORMS.index(form))
    layer = make_layer(form, rng)
    background = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    loose = PlacementRules(max_overlap=1.0, min_visible_area=1, min_visible_fraction=0.0)
    image, _, _ = place_instances(background, [Request(layer, at=(5, 7))], rng, loose)
    under = background[5 : 5 + H, 7 : 7 + W].astype(np.float32)
    a = layer.alpha[..., None]
    expected = np.clip(under * (1 - a) + layer.render(under) * a, 0, 255)
    assert np.abs(image[5 : 5 + H, 7 : 7 + W] - expected).max() <= 0.5 + 1e-3  # rounded, saturated
    outside = np.ones((40, 50), bool)
    outside[5 : 5 + H, 7 : 7 + W] = False
    assert np.array_equal(image[outside], background[outside])


def test_background_is_left_alone_unless_painting_in_place():
    layer = Layer.solid(np.ones((4, 4), np.float32), np.full(3, 255, np.float32), 1)
    loose = PlacementRules(max_overlap=1.0, min_visible_area=1, min_visible_fraction=0.0)
    background = np.zeros((10, 10, 3), np.uint8)
    rng = np.random.default_rng(0)
    image, _, _ = place_instances(background, [Request(layer, at=(2, 2))], rng, loose)
    assert image is not background and not background.any()
    image, _, _ = place_instances(background, [Request(layer, at=(2, 2))], rng, loose, in_place=True)
    assert image is background and background[2:6, 2:6].min() == 255
