"""The label check measures what it says, on images made by hand (no model involved)."""

import numpy as np
import pytest

from vision_synth.diffusion import check

SIZE = 48


def square(y, x, side=12):
    m = np.zeros((SIZE, SIZE), bool)
    m[y : y + side, x : x + side] = True
    return m


def flat(value=100):
    return np.full((SIZE, SIZE, 3), value, np.uint8)


def noisy(seed=0, spread=40):
    rng = np.random.default_rng(seed)
    return (100 + rng.integers(-spread, spread + 1, (SIZE, SIZE, 3))).astype(np.uint8)


MASKS = np.stack([square(4, 4), square(28, 28)])


def painted(background, mask, value, fraction=1.0):
    out = background.copy()
    ys, xs = np.nonzero(mask)
    n = int(round(len(ys) * fraction))
    out[ys[:n], xs[:n]] = value
    return out


@pytest.mark.parametrize("fraction, expected", [(1.0, 1.0), (0.5, 0.5), (0.0, 0.0)])
def test_inserted_agreement_is_the_changed_fraction(fraction, expected):
    bg = flat()
    out = painted(bg, MASKS[0], 200, fraction)
    agreement, changed = check.inserted_agreement(out, bg, MASKS, min_difference=12, ring=4, raw=[out, out])
    assert agreement[0] == pytest.approx(expected)
    assert agreement[1] == 0.0  # the other instance was left as background
    assert not (changed & ~MASKS).any()


def retextured(background, seed, spread=40):
    """What a model that only re-textures the surface makes: the same kind of texture everywhere."""
    return noisy(seed, spread)


def test_a_retextured_region_is_not_an_insert():
    # on a textured part, the mask's pixels of a re-textured output differ from the background
    # by the texture's own spread; the model's raw output differs as much in the ring
    bg = noisy(0)
    raw = retextured(bg, seed=1)
    pasted = bg.copy()
    pasted[MASKS[0]] = raw[MASKS[0]]  # pasted inside the mask only: its ring is the background
    blind, _ = check.inserted_agreement(pasted, bg, MASKS[:1], min_difference=12, ring=4, raw=[pasted])
    assert blind[0] > 0.5  # measured on the pasted image, re-texturing passes as an insert
    agreement, _ = check.inserted_agreement(pasted, bg, MASKS[:1], min_difference=12, ring=4, raw=[raw])
    assert agreement[0] < 0.2  # against the raw output's ring it does not stand out


def test_a_distinct_object_on_texture_is_an_insert():
    bg = noisy(0)
    raw = np.clip(bg.astype(int) + noisy(1, spread=6).astype(int) - 100, 0, 255).astype(np.uint8)  # VAE-like noise
    raw[MASKS[0]] = (250, 30, 30)
    pasted = bg.copy()
    pasted[MASKS[0]] = raw[MASKS[0]]
    agreement, _ = check.inserted_agreement(pasted, bg, MASKS[:1], min_difference=12, ring=4, raw=[raw])
    assert agreement[0] > 0.9


def test_inserted_change_below_the_ring_noise_does_not_count():
    bg = flat()
    out = noisy(spread=40)  # everything changed by up to 40: the ring's noise level is high
    out[MASKS[0]] = 120  # a change of 20 inside the mask: below that noise
    agreement, _ = check.inserted_agreement(out, bg, MASKS, min_difference=12, ring=4, raw=[out, out])
    assert agreement[0] < 0.2
    out[MASKS[0]] = 250  # far above it
    agreement, _ = check.inserted_agreement(out, bg, MASKS, min_difference=12, ring=4, raw=[out, out])
    assert agreement[0] == 1.0


@pytest.mark.parametrize("after, expected", [("kept", 1.0), ("erased", 0.0), ("half", 0.5)])
def test_retained_agreement(after, expected):
    bg = flat()
    composite = painted(bg, MASKS[0], 220)
    output = {"kept": composite, "erased": bg, "half": painted(bg, MASKS[0], 220, 0.5)}[after]
    agreement = check.retained_agreement(output, composite, bg, MASKS[:1], min_difference=12, ring=4)
    assert agreement[0] == pytest.approx(expected)


def test_retained_agreement_is_nan_for_an_instance_that_never_stood_out():
    bg = flat()
    agreement = check.retained_agreement(bg, bg, bg, MASKS[:1], min_difference=12, ring=4)
    assert np.isnan(agreement[0])


def test_separated_agreement():
    out = painted(flat(60), MASKS[0], 200)
    agreement = check.separated_agreement(out, MASKS, min_difference=12, ring=4)
    assert agreement[0] == pytest.approx(1.0)  # a distinct square: perfectly separable
    assert agreement[1] == 0.0  # nothing there: same colour inside and around
    textured = noisy(spread=60)  # colour noise everywhere: means nearly equal
    assert check.separated_agreement(textured, MASKS, 12, 4)[0] == 0.0


def test_separated_agreement_without_ring_is_nan():
    whole = np.ones((1, SIZE, SIZE), bool)
    assert np.isnan(check.separated_agreement(flat(), whole, 12, 4)[0])


def test_refined_masks_lie_inside_the_plan_without_speckle():
    changed = np.zeros_like(MASKS)
    changed[0, 5:14, 5:14] = True
    changed[0, 9, :] = False  # a 1-pixel gap: closed again
    changed[0, 15, 15] = True  # one stray pixel: dropped
    changed[1, 20:40, 20:40] = True  # spills past the planned mask: cut back to it
    refined = check.refine_masks(changed, MASKS)
    assert not (refined & ~MASKS).any()
    assert refined[0, 9, 5:14].all()
    assert not refined[0, 15, 15]
    assert refined[1].sum() == (MASKS[1] & changed[1]).sum()


@pytest.mark.parametrize("agreement, keep", [
    ([0.5, 0.49, np.nan, 1.0], [True, False, True, True]),
    ([0.0, 0.0, 0.0, 0.0], [False, False, False, False]),
])
def test_judge_keeps_agreeing_and_unmeasurable(agreement, keep):
    masks = np.ones((4, 4, 4), bool)
    result = check.judge(np.array(agreement), 0.5, masks)
    assert result.keep.tolist() == keep


def test_judge_never_keeps_an_empty_mask():
    masks = np.zeros((1, 4, 4), bool)
    assert not check.judge(np.array([np.nan]), 0.5, masks).keep[0]
