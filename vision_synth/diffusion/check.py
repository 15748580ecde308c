"""The label check of diffusion samples: do the generated pixels agree with each planned mask?

A diffusion model may ignore its mask: paint background into it, or spill past it. Labels here
come from the plan, so each planned instance is measured against the pixels and dropped when they
do not support it. What is measured (see CheckSpec for the thresholds):
- inserted (inpaint-insert): the fraction of the mask whose pixels differ from the background
  they were painted on by more than the noise floor: how much the model's raw output (before it
  is pasted inside the mask) differs from the background in the ring just outside the region it
  was asked to paint (the VAE round trip, and whatever re-texturing the model does everywhere).
  A model that re-textures the whole surface changes that ring as much as the mask, so its
  "insert" does not stand out; one that paints a distinct object into the mask does. A model that
  re-textures only inside the mask is not caught by this floor (the semantic check is for that);
- retained (refine): of the mask pixels that differed from the background before refining, the
  fraction that still differ after it;
- separated (layout-to-image): how well the mean colours of the mask and of its ring separate
  the pixels of both (true-positive + true-negative rate - 1 of a nearest-mean classifier).
What it does not establish: that the pixels show the named object. A changed, retained or
separable region can still hold the wrong thing; the check catches missing and washed-out
instances, not wrong ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# percentile of the ring's difference taken as its noise level
NOISE_PERCENTILE = 90
# connected pieces of a refined mask smaller than this are dropped as speckle
MIN_PIECE = 4


@dataclass(frozen=True, eq=False)
class CheckResult:
    agreement: np.ndarray  # (N,) in [0, 1]; NaN where nothing could be measured
    keep: np.ndarray  # (N,) bool
    masks: np.ndarray  # N×H×W: the labels of all N (planned or refined); write masks[keep]


def pixel_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H×W float32: mean absolute RGB difference, 0..255."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)


def dilate(mask: np.ndarray, width: int) -> np.ndarray:
    if width <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def floor_bands(painted: np.ndarray, within: np.ndarray, ring: int) -> np.ndarray:
    """N×H×W: per instance, the band of width `ring` just outside `painted[k]` (the region the
    model was asked to paint) and inside `within[k]` (where its raw output lies, e.g. its crop)."""
    return np.stack([dilate(p, ring) & ~p & w for p, w in zip(painted, within)]) if len(painted) else painted.copy()


def changed_pixels(output: np.ndarray, reference: np.ndarray, masks: np.ndarray, min_difference: float,
                   ring: int, raw=None, bands=None) -> np.ndarray:
    """N×H×W: pixels of each mask that differ from `reference` by more than the noise around it.

    The noise level of mask k is the 90th percentile of the difference from `reference` in its
    band, outside every mask: `bands[k]` (see floor_bands), by default the ring of width `ring`
    around the mask (outside all masks when that ring is empty). It is measured on `raw[k]`, the
    image the model made for mask k before it was pasted (by default `output` itself). A pixel
    counts as changed above max(min_difference, that level).
    """
    diff = pixel_difference(output, reference)
    outside = ~masks.any(axis=0)
    changed = np.zeros_like(masks)
    for k, mask in enumerate(masks):
        if bands is None:
            band = dilate(mask, ring) & outside
            if not band.any():
                band = outside
        else:
            band = bands[k] & outside
        around = diff if raw is None else pixel_difference(raw[k], reference)
        level = float(np.percentile(around[band], NOISE_PERCENTILE)) if band.any() else 0.0
        changed[k] = mask & (diff > max(min_difference, level))
    return changed


def covered_fraction(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    n = whole.reshape(len(whole), -1).sum(axis=1).astype(np.float64)
    k = part.reshape(len(part), -1).sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.maximum(n, 1), np.nan)


def inserted_agreement(output, background, masks, min_difference: float, ring: int,
                       raw, bands=None) -> tuple[np.ndarray, np.ndarray]:
    """(agreement, changed): fraction of each mask changed from `background` by more than the
    noise floor of `raw[k]` (the model's own output for mask k, in `bands[k]`; see changed_pixels),
    and those pixels."""
    changed = changed_pixels(output, background, masks, min_difference, ring, raw, bands)
    return covered_fraction(changed, masks), changed


def retained_agreement(output, composite, background, masks, min_difference: float, ring: int) -> np.ndarray:
    """Of each mask's pixels that stood out from `background` in `composite`, the fraction that
    still do in `output`; NaN for an instance that did not stand out to begin with."""
    before = changed_pixels(composite, background, masks, min_difference, ring)
    after = changed_pixels(output, background, masks, min_difference, ring)
    return covered_fraction(after & before, before)


def separated_agreement(output, masks, min_difference: float, ring: int) -> np.ndarray:
    """Per mask: TPR + TNR - 1 of telling mask pixels from ring pixels by the nearer mean colour
    (0 when the means differ by less than min_difference); NaN without a ring."""
    pixels = output.astype(np.float32)
    agreement = np.full(len(masks), np.nan)
    for k, mask in enumerate(masks):
        band = dilate(mask, ring) & ~mask
        if not mask.any() or not band.any():
            continue
        inside, around = pixels[mask], pixels[band]
        mean_in, mean_out = inside.mean(axis=0), around.mean(axis=0)
        if np.abs(mean_in - mean_out).mean() < min_difference:
            agreement[k] = 0.0
            continue

        def nearer_inside(x):
            return ((x - mean_in) ** 2).sum(axis=1) < ((x - mean_out) ** 2).sum(axis=1)

        agreement[k] = max(0.0, float(nearer_inside(inside).mean() + (~nearer_inside(around)).mean() - 1.0))
    return agreement


def refine_masks(changed: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Changed pixels, closed over 1-pixel gaps, kept inside the planned mask, speckle removed."""
    kernel = np.ones((3, 3), np.uint8)
    refined = np.zeros_like(masks)
    for k, (part, mask) in enumerate(zip(changed, masks)):
        closed = cv2.morphologyEx(part.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool) & mask
        count, labels, stats, _ = cv2.connectedComponentsWithStats(closed.astype(np.uint8), connectivity=8)
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_PIECE)
        refined[k] = np.isin(labels, big[big > 0])
    return refined


def judge(agreement: np.ndarray, min_agreement: float, masks: np.ndarray) -> CheckResult:
    """Keep what agrees enough, and what could not be measured (NaN)."""
    keep = np.isnan(agreement) | (agreement >= min_agreement)
    return CheckResult(agreement, keep & masks.reshape(len(masks), -1).any(axis=1), masks)
