"""Placement and occlusion: paste layers in z-order and derive each instance's visible mask.

A label map (H×W, 0 = background, k = instance k) records which instance owns each pixel, so
occlusion, overlap control and visible masks come from one array: an instance's visible mask is
exactly the set of pixels whose final colour it set last.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision_synth import scene  # scene.kernels: imported on first use (see scene/__init__.py)
from vision_synth.masks import mask_box
from vision_synth.scene.layers import Layer
from vision_synth.types import Instances


@dataclass(frozen=True)
class PlacementRules:
    max_overlap: float = 0.3
    min_visible_area: int = 16
    min_visible_fraction: float = 0.25
    max_tries: int = 20


@dataclass(frozen=True, eq=False)
class Request:
    """A layer to place; `region` (H×W bool) confines it, `at` fixes its top-left (y, x)."""

    layer: Layer
    region: np.ndarray | None = None
    at: tuple[int, int] | None = None


@dataclass(frozen=True)
class PlacementStats:
    placed: int
    skipped: int  # no position met the rules within max_tries, or too small to be kept
    covered: int  # placed, then hidden entirely by later instances (dropped)


def place_instances(
    background: np.ndarray,
    requests: list[Request],
    rng: np.random.Generator,
    rules: PlacementRules,
    amodal: bool = False,
    in_place: bool = False,
) -> tuple[np.ndarray, Instances, PlacementStats]:
    """Paste `requests` in order over `background` (H×W×3 uint8); later ones lie on top.

    A position is accepted when the new instance lies at most `max_overlap` over earlier ones and
    no earlier instance is left partly visible below the minimum area or fraction (fully hidden
    is allowed: it is then dropped, and none of its pixels remain). Returns the image, the
    visible instances (with `occlusion` and `source` attributes) and counts. `in_place` paints
    into `background` itself (for a caller that made it and needs no clean copy).
    """
    image = background if in_place else background.copy()
    if not image.flags.c_contiguous:  # kernels.paint walks the image's rows in memory
        raise ValueError("place_instances: a background painted in place must be C-contiguous")
    height, width = image.shape[:2]
    labels = np.zeros((height, width), np.min_scalar_type(len(requests)))  # uint8 for < 256 requests
    placed: list[tuple[Request, int, int]] = []
    visible = np.zeros(len(requests) + 1, np.int64)  # visible pixel count per label (index 0 unused)
    full = np.zeros(len(requests) + 1, np.int64)  # amodal pixel count per label
    lost = np.zeros(len(requests) + 1, np.int64)  # what the instance being placed would hide of each
    skipped = 0
    for request in requests:
        layer = request.layer
        mask = layer.mask
        area = int(np.count_nonzero(mask))
        if area < rules.min_visible_area or layer.shape[0] > height or layer.shape[1] > width:
            skipped += 1
            continue
        n = len(placed) + 1  # this instance's label, if it is placed
        spot = _find_spot(request, mask, area, labels, visible[:n], full[:n], lost[:n], rng, rules)
        if spot is None:
            skipped += 1
            continue
        y, x, beneath = spot
        _paint(image, layer, y, x)
        scene.kernels.stamp(labels, mask, y, x, n)
        if beneath:
            visible[:n] -= lost[:n]
        visible[n] = full[n] = area
        placed.append((request, y, x))

    keep = [k for k in range(1, len(placed) + 1) if visible[k] > 0]
    instances = _collect(labels, placed, keep, visible, full, amodal)
    stats = PlacementStats(placed=len(keep), skipped=skipped, covered=len(placed) - len(keep))
    return image, instances, stats


def _find_spot(request, mask, area, labels, visible, full, lost, rng, rules):
    """(y, x, whether anything lies beneath: then `lost` holds the pixels lost per earlier label),
    or None."""
    height, width = labels.shape
    h, w = mask.shape
    tries = 1 if request.at is not None else rules.max_tries
    for _ in range(tries):
        if request.at is not None:
            y, x = request.at
        else:
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
        if request.region is not None and not request.region[y : y + h, x : x + w][mask].all():
            continue
        verdict = scene.kernels.overlap(labels, mask, y, x, area, visible, full, rules.max_overlap,
                                        rules.min_visible_area, rules.min_visible_fraction, lost)
        if verdict >= 0:
            return y, x, verdict == 1
    return None


def _paint(image: np.ndarray, layer: Layer, y: int, x: int) -> None:
    h, w = layer.shape
    window = image[y : y + h, x : x + w]
    if layer.blend == "poisson":
        under = window.astype(np.float32)
        window[...] = poisson_paste(image, layer.render(under), layer.mask, y, x)
        return
    scene.kernels.paint(image, y, x, np.ascontiguousarray(layer.alpha), _map3(layer.gain), _map3(layer.offset))


def _map3(m: np.ndarray | float) -> np.ndarray:
    """A layer's gain or offset as the float32 C-contiguous 3-d array `kernels.paint` reads: a scalar
    as 1×1×1, an RGB triple as 1×1×3, a grey map as h×w×1 (no copy when it is contiguous already)."""
    m = np.ascontiguousarray(m, np.float32)
    return m.reshape(1, 1, -1) if m.ndim < 2 else m.reshape(*m.shape[:2], -1)


def poisson_paste(image: np.ndarray, patch: np.ndarray, mask: np.ndarray, y: int, x: int) -> np.ndarray:
    """The h×w window at (y, x) after cv2.seamlessClone of `patch` inside `mask`; pixels outside the
    mask are unchanged. Works at image borders by cloning into a reflect-padded copy of the window."""
    h, w = mask.shape
    pad = 8
    dst = image[y : y + h, x : x + w]
    dst_p = cv2.copyMakeBorder(np.ascontiguousarray(dst), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    src_p = dst_p.copy()
    src_p[pad : pad + h, pad : pad + w] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    mask_p = np.zeros(dst_p.shape[:2], np.uint8)
    mask_p[pad : pad + h, pad : pad + w] = mask.astype(np.uint8) * 255
    bx, by, bw, bh = mask_box(mask_p)
    center = (bx + bw // 2, by + bh // 2)
    out = cv2.seamlessClone(src_p, dst_p, mask_p, center, cv2.NORMAL_CLONE)[pad : pad + h, pad : pad + w]
    return np.where(mask[..., None], out, dst)


def _collect(labels, placed, keep, visible, full, amodal: bool) -> Instances:
    height, width = labels.shape
    n = len(keep)
    masks = np.zeros((n, height, width), bool)
    amodal_masks = np.zeros((n, height, width), bool) if amodal else None
    cats = np.zeros(n, np.int64)
    occlusion = np.zeros(n, np.float32)
    sources = np.empty(n, dtype=object)
    for row, k in enumerate(keep):
        request, y, x = placed[k - 1]
        h, w = request.layer.shape
        # label k was only ever painted inside its own layer's window
        np.equal(labels[y : y + h, x : x + w], k, out=masks[row, y : y + h, x : x + w])
        if amodal_masks is not None:
            amodal_masks[row, y : y + h, x : x + w] = request.layer.mask
        cats[row] = request.layer.category_id
        occlusion[row] = 1.0 - visible[k] / full[k]
        sources[row] = request.layer.source
    return Instances(masks, cats, amodal_masks, {"occlusion": occlusion, "source": sources})
