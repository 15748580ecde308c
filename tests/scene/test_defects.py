import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from vision_synth.scene.defects import (
    CrackSpec,
    DefectSpec,
    DentSpec,
    ParticlesSpec,
    PitSpec,
    ScratchSpec,
    StainSpec,
    make_defect,
)
from vision_synth.scene.layers import Layer
from vision_synth.scene.textures import make_texture

SPECS = {
    "scratch": ScratchSpec(category="scratch"),
    "crack": CrackSpec(category="crack"),
    "stain": StainSpec(category="stain"),
    "pit": PitSpec(category="pit"),
    "dent": DentSpec(category="dent"),
    "particles": ParticlesSpec(category="particles"),
}
KINDS = list(SPECS)
SIZES = [(512, 512), (96, 128), (300, 200)]


def defect(spec, seed=0, image_hw=(512, 512), category_id=3) -> Layer:
    return make_defect(spec, np.random.default_rng(seed), image_hw, category_id)


def composite(layer: Layer, under: np.ndarray) -> np.ndarray:
    """What the placement engine writes (before rounding): under·(1−a) + render(under)·a."""
    over = np.broadcast_to(layer.render(under), under.shape)
    a = layer.alpha[..., None]
    return under * (1.0 - a) + over * a


def grey(layer: Layer, value: float = 128.0) -> np.ndarray:
    return np.full((*layer.shape, 3), value, np.float32)


def textured(layer: Layer, seed: int) -> np.ndarray:
    name = ("brushed_metal", "cast_metal", "wood", "fabric", "painted")[seed % 5]
    return make_texture(name, np.random.default_rng(seed), *layer.shape).astype(np.float32)


def mask_extent(layer: Layer) -> float:
    ys, xs = np.nonzero(layer.mask)
    return float(np.hypot(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("image_hw", SIZES)
@pytest.mark.parametrize("seed", range(6))
def test_layer_is_a_valid_local_patch(kind, image_hw, seed):
    layer = defect(SPECS[kind], seed, image_hw, category_id=7)
    assert layer.category_id == 7 and layer.source == "procedural" and layer.blend == "alpha"
    assert layer.alpha.dtype == np.float32 and layer.alpha.ndim == 2
    assert layer.alpha.min() >= 0.0 and layer.alpha.max() <= 1.0
    assert layer.mask.any()
    assert layer.shape[0] <= image_hw[0] and layer.shape[1] <= image_hw[1]
    # tightly cropped: what is drawn (alpha > 0) reaches within one pixel of every side
    ys, xs = np.nonzero(layer.alpha > 0)
    assert ys.min() <= 1 and xs.min() <= 1
    assert ys.max() >= layer.shape[0] - 2 and xs.max() >= layer.shape[1] - 2
    # local: far smaller than the image
    assert layer.alpha.size < 0.5 * image_hw[0] * image_hw[1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(10))
def test_render_keeps_the_patch_shape_and_range(kind, seed):
    layer = defect(SPECS[kind], seed)
    for under in (grey(layer, 0.0), grey(layer, 255.0), textured(layer, seed)):
        out = np.broadcast_to(layer.render(under), under.shape)
        assert out.shape == (*layer.shape, 3) and out.dtype == np.float32
        assert out.min() >= -1e-3 and out.max() <= 255.0 + 1e-3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(10))
def test_visible_change_lies_inside_the_mask(kind, seed):
    layer = defect(SPECS[kind], seed)
    for under in (grey(layer), textured(layer, seed)):
        change = np.abs(composite(layer, under) - under).sum(axis=2)
        assert change.sum() > 0
        assert change[layer.mask].sum() >= 0.9 * change.sum()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(10))
def test_defect_is_visible_over_its_mask(kind, seed):
    layer = defect(SPECS[kind], seed)
    under = grey(layer)
    change = np.abs(composite(layer, under) - under).max(axis=2)
    # a mid-grey surface changes by a few grey levels on average over the labelled pixels
    assert change[layer.mask].mean() > 4.0


def test_dent_changes_nothing_outside_its_mask():
    for seed in range(10):
        layer = defect(SPECS["dent"], seed)
        under = textured(layer, seed)
        assert np.array_equal(composite(layer, under)[~layer.mask], under[~layer.mask])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_defect(kind):
    a, b = defect(SPECS[kind], 11), defect(SPECS[kind], 11)
    assert np.array_equal(a.alpha, b.alpha)
    under = grey(a)
    assert np.array_equal(a.render(under), b.render(under))


@pytest.mark.parametrize("kind", KINDS)
def test_seeds_give_different_defects(kind):
    alphas = [defect(SPECS[kind], seed).alpha for seed in range(5)]
    assert len({(a.shape, a.tobytes()) for a in alphas}) == 5


@pytest.mark.parametrize("kind", KINDS)
def test_uses_only_the_given_generator(kind):
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    defect(SPECS[kind], 0)
    assert np.array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize(
    "small, large",
    [
        (ScratchSpec(category="s", length=0.1), ScratchSpec(category="s", length=0.4)),
        (CrackSpec(category="c", length=0.08), CrackSpec(category="c", length=0.3)),
        (StainSpec(category="s", size=0.04), StainSpec(category="s", size=0.15)),
        (PitSpec(category="p", radius=2.0), PitSpec(category="p", radius=6.0)),
        (DentSpec(category="d", size=0.03), DentSpec(category="d", size=0.12)),
        (ParticlesSpec(category="p", spread=0.015), ParticlesSpec(category="p", spread=0.08)),
    ],
    ids=KINDS,
)
def test_size_follows_the_spec(small, large):
    small_extent = np.mean([mask_extent(defect(small, seed)) for seed in range(12)])
    large_extent = np.mean([mask_extent(defect(large, seed)) for seed in range(12)])
    assert large_extent > 1.8 * small_extent


def test_sizes_are_fractions_of_the_shorter_side():
    spec = StainSpec(category="s", size=0.1)
    small = np.mean([defect(spec, seed, (100, 400)).mask.sum() for seed in range(8)])
    large = np.mean([defect(spec, seed, (400, 100 * 8)).mask.sum() for seed in range(8)])
    assert 10 < large / small < 22  # 4× the side: about 16× the area


def test_widths_are_in_pixels():
    def mean_area(width):
        spec = ScratchSpec(category="s", length=0.3, curvature=0.0, width=width)
        return np.mean([defect(spec, seed).mask.sum() for seed in range(8)])

    assert 2.2 < mean_area(6.0) / mean_area(2.0) < 4.0


@pytest.mark.parametrize(
    "spec",
    [
        ScratchSpec(category="s", tone="dark"),
        ScratchSpec(category="s", tone="light"),
        ParticlesSpec(category="p", tone="dark"),
        ParticlesSpec(category="p", tone="light"),
        CrackSpec(category="c"),
        PitSpec(category="p"),
    ],
    ids=["scratch-dark", "scratch-light", "particles-dark", "particles-light", "crack", "pit"],
)
def test_tone_sets_the_direction_of_change(spec):
    lighter = getattr(spec, "tone", "dark") == "light"
    for seed in range(8):
        layer = defect(spec, seed)
        under = textured(layer, seed)
        delta = (composite(layer, under) - under).mean(axis=2)[layer.mask]
        assert (delta.mean() > 2.0) if lighter else (delta.mean() < -2.0)
        if spec.kind != "pit":  # a pit's wall facing the light is lit; elsewhere every pixel follows the tone
            assert ((delta > -0.5) if lighter else (delta < 0.5)).all()


def test_tone_any_gives_both():
    spec = ScratchSpec(category="s", tone="any")
    signs = set()
    for seed in range(16):
        layer = defect(spec, seed)
        under = grey(layer)
        signs.add(bool((composite(layer, under) - under)[layer.mask].mean() > 0))
    assert signs == {True, False}


def test_stain_takes_its_colour_from_the_spec():
    spec = StainSpec(category="s", colors=[(200, 40, 40)], opacity=0.8)
    layer = defect(spec, 1)
    under = grey(layer, 200.0)
    mean = composite(layer, under)[layer.mask].mean(axis=0)
    assert mean[0] > mean[1] + 20 and mean[0] > mean[2] + 20  # reddish


def test_particles_are_one_instance_in_several_parts():
    import cv2

    spec = ParticlesSpec(category="p", dots=20, spread=0.08, dot_radius=0.8)
    parts = [cv2.connectedComponents(defect(spec, seed).mask.view(np.uint8))[0] - 1 for seed in range(5)]
    assert min(parts) >= 3


@pytest.mark.parametrize(
    "spec",
    [
        ScratchSpec(category="s", width=0.05),
        CrackSpec(category="c", width=0.05),
        ParticlesSpec(category="p", dot_radius=0.1, dots=1),
        PitSpec(category="p", radius=0.2),
        StainSpec(category="s", size=0.0005),
        DentSpec(category="d", size=0.0005),
    ],
    ids=KINDS,
)
def test_a_draw_thinner_than_a_pixel_still_has_a_mask(spec):
    for seed in range(5):
        assert defect(spec, seed).mask.any()


@pytest.mark.parametrize(
    "spec",
    [
        ScratchSpec(category="s", length=3.0),
        CrackSpec(category="c", length=3.0, branches=3),
        StainSpec(category="s", size=3.0),
        PitSpec(category="p", radius=100.0),
        DentSpec(category="d", size=3.0),
        ParticlesSpec(category="p", spread=3.0, dot_radius=3.0),
    ],
    ids=KINDS,
)
def test_a_defect_larger_than_the_image_is_shrunk_to_fit(spec):
    for image_hw in [(64, 64), (48, 200), (8, 8)]:
        layer = defect(spec, 0, image_hw)
        assert layer.shape[0] <= image_hw[0] and layer.shape[1] <= image_hw[1]
        assert layer.mask.any()


# ---------------------------------------------------------------- spec validation

ADAPTER = TypeAdapter(DefectSpec)


@pytest.mark.parametrize(
    "data, cls",
    [
        ({"kind": "scratch", "category": "scratch"}, ScratchSpec),
        ({"kind": "crack", "category": "crack", "branches": [1, 2]}, CrackSpec),
        ({"kind": "stain", "category": "stain", "colors": [[10, 20, 30]]}, StainSpec),
        ({"kind": "pit", "category": "pit", "radius": 3}, PitSpec),
        ({"kind": "dent", "category": "dent", "contrast": [0.1, 0.2]}, DentSpec),
        ({"kind": "particles", "category": "dust", "dots": [2, 4], "tone": "light"}, ParticlesSpec),
    ],
)
def test_kind_selects_the_spec(data, cls):
    spec = ADAPTER.validate_python(data)
    assert type(spec) is cls and spec.category == data["category"]
    assert spec.count == (0, 2)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"kind": "scratch", "category": "s", "width": [3, 1]}, "width"),
        ({"kind": "scratch", "category": "s", "length": [0, 0.2]}, "length"),
        ({"kind": "scratch", "category": "s", "contrast": [0.5, 1.5]}, "contrast"),
        ({"kind": "scratch", "category": "s", "curvature": [-0.1, 0.2]}, "curvature"),
        ({"kind": "scratch", "category": "s", "tone": "grey"}, "tone"),
        ({"kind": "crack", "category": "c", "branches": [2, 1]}, "branches"),
        ({"kind": "stain", "category": "s", "opacity": [0.2, 1.2]}, "opacity"),
        ({"kind": "stain", "category": "s", "colors": [[300, 0, 0]]}, "colors"),
        ({"kind": "stain", "category": "s", "colors": []}, "colors"),
        ({"kind": "pit", "category": "p", "radius": [0, 2]}, "radius"),
        ({"kind": "dent", "category": "d", "size": [0.2, 0.1]}, "size"),
        ({"kind": "particles", "category": "p", "dots": [0, 5]}, "dots"),
        ({"kind": "particles", "category": "p", "count": [-1, 2]}, "count"),
        ({"kind": "scratch", "category": "s", "lenght": [0.1, 0.2]}, "lenght"),
        ({"kind": "scratch"}, "category"),
        ({"kind": "scratch", "category": ""}, "category"),
        ({"kind": "bubble", "category": "b"}, "kind"),
    ],
)
def test_bad_spec_is_an_error_naming_the_key(data, key):
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python(data)
    errors = info.value.errors()
    named = [error["loc"] for error in errors if key in map(str, error["loc"])]
    # a bad tag has no field location; its message names the discriminator instead
    assert named or any(f"'{key}'" in error["msg"] for error in errors if error["loc"] == ())


def test_specs_are_immutable():
    spec = ScratchSpec(category="s")
    with pytest.raises(ValidationError):
        spec.width = (1.0, 2.0)


def test_make_defect_rejects_other_objects():
    with pytest.raises(TypeError):
        make_defect(object(), np.random.default_rng(0), (64, 64), 1)


def test_canvas_coverage_is_the_4x4_box_mean():
    import cv2

    from vision_synth.scene.defects import _Canvas, _alpha, _alpha8, _bounds

    rng = np.random.default_rng(3)
    for _ in range(5):
        points = rng.uniform(0, 60, (7, 2))
        canvas = _Canvas(_bounds(points), 2.0)
        canvas.fill(points)
        exact = cv2.resize(canvas.pixels, (canvas.width, canvas.height), interpolation=cv2.INTER_AREA)
        assert np.abs(canvas.coverage8().astype(int) - exact).max() <= 1
        # the table lookup is _alpha of the coverage exactly, faint draws (peak < 1/2) rescaled too
        coverage = canvas.coverage8().astype(np.float32) * np.float32(1.0 / 255.0)
        np.testing.assert_array_equal(canvas.alpha(), _alpha(coverage))
        faint = (canvas.coverage8() // 3)
        np.testing.assert_array_equal(_alpha8(faint), _alpha(faint.astype(np.float32) * np.float32(1.0 / 255.0)))


def test_fit_shrinks_the_bounds_with_the_paths_exactly():
    from vision_synth.scene.defects import _bounds, _fit

    rng = np.random.default_rng(5)
    for _ in range(50):
        paths = [rng.normal(0.0, 80.0, (int(rng.integers(2, 30)), 2)) for _ in range(int(rng.integers(1, 4)))]
        fitted, bounds = _fit(paths, 3.0, (64, 96))
        np.testing.assert_array_equal(bounds, _bounds(np.concatenate(fitted)))
        extent = bounds[1] - bounds[0]  # within the room left by the padding (floor and ceil add 2)
        assert extent[0] <= 96 - 8 + 1e-9 and extent[1] <= 64 - 8 + 1e-9
