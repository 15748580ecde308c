import numpy as np
import pytest

from vision_synth.scene.textures import TEXTURES, _oriented_frame, _rotate_into_image, make_texture


def texture(name, seed, height=96, width=128):
    return make_texture(name, np.random.default_rng(seed), height, width)


@pytest.mark.parametrize("name", TEXTURES)
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (64, 96), (97, 33), (160, 161)])
def test_any_size_gives_that_size_rgb_uint8(name, size):
    image = texture(name, 0, *size)
    assert image.shape == (*size, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


@pytest.mark.parametrize("name", TEXTURES)
def test_same_seed_same_pixels(name):
    assert np.array_equal(texture(name, 5), texture(name, 5))


@pytest.mark.parametrize("name", TEXTURES)
def test_seeds_give_different_textures(name):
    images = [texture(name, seed).astype(np.float32) for seed in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(images[a] - images[b]).mean() > 2.0


@pytest.mark.parametrize("name", TEXTURES)
@pytest.mark.parametrize("seed", range(6))
def test_texture_is_not_flat(name, seed):
    image = texture(name, seed, 128, 128).astype(np.float32)
    assert image.std(axis=(0, 1)).mean() > 3.0
    # and not noise alone: neighbours are correlated along some axis (structure beyond one pixel)
    grey = image.mean(axis=2) - image.mean()
    across = (grey[:, :-1] * grey[:, 1:]).mean() / grey.var()
    down = (grey[:-1] * grey[1:]).mean() / grey.var()
    assert max(across, down) > 0.3


@pytest.mark.parametrize("name", TEXTURES)
def test_uses_only_the_given_generator(name):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    rng = np.random.default_rng(9)
    make_texture(name, rng, 40, 50)
    assert np.array_equal(np.random.get_state()[1], before)
    # the generator advanced: a second draw from it gives another texture
    assert not np.array_equal(make_texture(name, rng, 40, 50), texture(name, 9, 40, 50))


@pytest.mark.parametrize("size", [(1, 1), (90, 200), (512, 37)])
@pytest.mark.parametrize("step", [(8.0, 1.0), (4.0, 4.0), (1.0, 1.0)])
def test_rotated_patterns_cover_the_whole_frame(size, step):
    # oriented textures are drawn in their own axes and rotated in: no pixel may fall outside
    for angle in np.linspace(0.0, np.pi, 13):
        rows, cols = _oriented_frame(*size, angle, *step)
        out = _rotate_into_image(np.ones((rows, cols), np.float32), *size, angle, *step)
        assert out.shape == size and (out == 1.0).all()


def test_unknown_texture_is_an_error():
    with pytest.raises(ValueError, match="marble"):
        make_texture("marble", np.random.default_rng(0), 8, 8)


@pytest.mark.parametrize("angle", [0.0, 0.4, 2.0])
def test_coarse_warp_is_exact_for_linear_fields(angle):
    # reduce=4 warps a 4× coarser grid and upsamples it: exact (away from the outermost pixels)
    # for a field that is linear in the image, such as wood's ring phase before its warp noise
    rows, cols = _oriented_frame(120, 170, angle, 4.0, 4.0)
    source = np.arange(rows, dtype=np.float32)[:, None] * 3.0 + np.arange(cols, dtype=np.float32)[None, :] * 1.5
    full = _rotate_into_image(source, 120, 170, angle, 4.0, 4.0)
    coarse = _rotate_into_image(source, 120, 170, angle, 4.0, 4.0, reduce=4)
    assert coarse.shape == full.shape
    assert np.abs(coarse - full)[3:-3, 3:-3].max() < 1e-3
    assert np.abs(coarse - full).max() < 2.0  # edges clamp to the last coarse sample: under a step of phase
