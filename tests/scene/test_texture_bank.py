"""The texture bank: fields are a pure function of (seed, texture, image size); every image takes its
own window, turn, colours and lighting from its own generator."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from vision_synth.scene.texture_bank import (MAX_FIELD_BYTES, BankCrop, TextureBank, bank_fields, field_side,
                                             fields_per_texture)
from vision_synth.scene.textures import TEXTURES
from vision_synth.seeding import BACKGROUND_STREAM, rng_for

H, W = 48, 64


def fields_digest(seed, texture, height=H, width=W):
    return hashlib.sha256(b"".join(f.tobytes() for f in bank_fields(seed, texture, height, width))).hexdigest()


@pytest.mark.parametrize("texture", TEXTURES)
def test_fields_are_a_pure_function_of_seed_and_texture(texture):
    first, again = bank_fields(5, texture, H, W), bank_fields(5, texture, H, W)
    assert len(first) == fields_per_texture(H, W) >= 2
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(f.shape == (field_side(H, W),) * 2 and f.dtype == np.uint8 and not f.flags.writeable for f in first)
    # fields of one texture differ from each other, and with the seed
    assert len({f.tobytes() for f in first}) == len(first)
    assert fields_digest(6, texture) != fields_digest(5, texture)


def test_fields_are_the_same_in_another_process():
    code = ("import hashlib; from vision_synth.scene.texture_bank import bank_fields; "
            "from vision_synth.scene.textures import TEXTURES; "
            f"print(' '.join(hashlib.sha256(b''.join(f.tobytes() for f in bank_fields(5, t, {H}, {W}))).hexdigest() "
            "for t in TEXTURES))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [fields_digest(5, t) for t in TEXTURES]


def test_textures_of_a_bank_do_not_share_fields():
    digests = {fields_digest(5, t) for t in TEXTURES}
    assert len(digests) == len(TEXTURES)


def test_large_images_keep_the_bank_within_its_budget():
    for side in (512, 2048, 4096):
        n, field = fields_per_texture(side, side), field_side(side, side)
        assert n >= 2 and (n == 2 or n * field * field <= MAX_FIELD_BYTES)
    assert fields_per_texture(512, 512) == 16


def draws(bank, n, seed=3, texture="cast_metal"):
    return [bank.draw(texture, rng_for(seed, i, BACKGROUND_STREAM)) for i in range(n)]


@pytest.fixture(scope="module")
def bank():
    return TextureBank(5, TEXTURES, H, W)


@pytest.mark.parametrize("texture", TEXTURES)
def test_every_image_takes_its_own_crop(bank, texture):
    made = draws(bank, 300, texture=texture)
    crops = [crop for _, crop in made]
    assert len(set(crops)) == len(crops), "no two samples share the same window and turn"
    assert len({image.tobytes() for image, _ in made}) == len(made)
    assert {c.dihedral for c in crops} == set(range(8)) and {c.field for c in crops} == set(range(16))
    for image, _ in made[:20]:
        assert image.shape == (H, W, 3) and image.dtype == np.uint8 and image.flags.c_contiguous


def test_same_sample_same_texture(bank):
    (a, crop_a), = draws(bank, 1, seed=9)
    (b, crop_b), = draws(TextureBank(5, ["cast_metal"], H, W), 1, seed=9)
    assert crop_a == crop_b and np.array_equal(a, b)


# the eight turns of the square: bit 2 transposes, bits 0-1 flip columns and rows
TURNS = [lambda w: w, lambda w: w[:, ::-1], lambda w: w[::-1], lambda w: w[::-1, ::-1],
         lambda w: w.T, lambda w: w.T[:, ::-1], lambda w: w.T[::-1], lambda w: w.T[::-1, ::-1]]


@pytest.mark.parametrize("dihedral", range(8))
def test_the_field_is_the_window_turned(bank, dihedral):
    rows, cols = (W, H) if dihedral & 4 else (H, W)
    crop = BankCrop("wood", 3, 7, 11, dihedral)
    window = bank.fields["wood"][3][7 : 7 + rows, 11 : 11 + cols]
    assert np.array_equal(bank.field(crop), TURNS[dihedral](window))


def test_the_drawn_texture_is_the_turned_window_lit_and_coloured(bank):
    """Whatever part of a turn the shading does itself (reading rows in reverse), the image is the
    turned window's, lit and coloured as `kernels.shade` does an unturned one."""
    from vision_synth import scene
    from vision_synth.scene.texture_bank import LIGHT
    from vision_synth.scene.textures import lighting, texture_ramp

    seen = set()
    for seed in range(60):
        image, crop = bank.draw("brushed_metal", rng_for(3, seed))
        replay = rng_for(3, seed)
        assert bank.crop("brushed_metal", replay) == crop
        dark, light = (c.astype(np.float64) for c in texture_ramp("brushed_metal", replay))
        rows, cols = lighting(replay, H, W, *LIGHT["brushed_metal"])
        turned = np.ascontiguousarray(bank.field(crop))
        assert np.array_equal(image, scene.kernels.shade(turned, 0, 0, False, rows, cols, dark, (light - dark) / 255))
        seen.add(crop.dihedral)
    assert seen == set(range(8))


def test_the_bank_draws_only_from_the_given_generator(bank):
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    rng = rng_for(1, 2)
    first = bank.draw("fabric", rng)
    assert np.array_equal(np.random.get_state()[1], before)
    assert bank.draw("fabric", rng)[1] != first[1]  # the generator advanced


def test_unknown_texture_is_an_error():
    with pytest.raises(ValueError, match="marble"):
        bank_fields(0, "marble", H, W)
