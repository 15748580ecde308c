"""Instance masks packed into few label planes, so one warp moves many instances.

Instances that do not overlap share a plane (pixel value = their label in it), which is exact under
any transform that only resamples masks nearest-neighbour. Where a pipeline also computes with
mask values or interpolates them, every instance gets its own 0/1 plane instead; a 0/1 plane stays
0/1 under any interpolation, so the mask read back is still the set of pixels the instance owns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision_synth.masks import mask_box


@dataclass(frozen=True, eq=False)
class PackedMasks:
    """`planes`: P×H×W; instance k lives in plane `plane_of[k]` with value `label_of[k]` (a 0/1 plane
    when `label_of[k] == 0`: any non-zero value); `plane_of[k] == -1` for an empty mask."""

    planes: np.ndarray
    plane_of: np.ndarray
    label_of: np.ndarray


def pack_masks(masks: np.ndarray, shared: bool) -> PackedMasks:
    """Pack N×H×W bool masks; with `shared`, greedily into as few planes as overlaps allow."""
    n, height, width = masks.shape
    if not shared:
        return PackedMasks(masks.view(np.uint8), np.arange(n), np.zeros(n, np.int64))
    dtype = np.uint8 if n < 255 else np.uint16
    if n >= np.iinfo(np.uint16).max:
        raise ValueError(f"{n} instances in one image: at most {np.iinfo(np.uint16).max - 1} can be packed")
    planes: list[np.ndarray] = []
    used: list[int] = []
    plane_of = np.full(n, -1, np.int64)
    label_of = np.zeros(n, np.int64)
    for k, (y0, y1, x0, x1) in enumerate(_extents(masks)):
        if y1 == 0:
            continue  # empty mask
        crop = masks[k, y0:y1, x0:x1]
        for p, plane in enumerate(planes):
            if not np.logical_and(plane[y0:y1, x0:x1], crop).any():
                break
        else:
            planes.append(np.zeros((height, width), dtype))
            used.append(0)
            p = len(planes) - 1
        used[p] += 1
        np.copyto(planes[p][y0:y1, x0:x1], used[p], where=crop)
        plane_of[k], label_of[k] = p, used[p]
    if len(planes) == 1:
        return PackedMasks(planes[0][None], plane_of, label_of)
    stack = np.stack(planes) if planes else np.zeros((0, height, width), dtype)
    return PackedMasks(stack, plane_of, label_of)


def _extents(masks: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1), end exclusive, of each mask (its `mask_box`); (0, 0, 0, 0) when empty."""
    extents = []
    for mask in masks:
        x, y, w, h = mask_box(mask)
        extents.append((y, y + h, x, x + w))
    return extents


def unpack_masks(planes: np.ndarray, packed: PackedMasks) -> tuple[np.ndarray, np.ndarray]:
    """N×H×W bool masks from (transformed) planes laid out as in `packed`, and their pixel counts
    (counted while each mask is still in cache)."""
    n = len(packed.plane_of)
    out = np.empty((n, *planes.shape[1:]), bool)  # every row is written below
    counts = np.zeros(n, np.int64)
    for k in range(n):
        p, label = int(packed.plane_of[k]), int(packed.label_of[k])
        if p < 0:
            out[k] = False
            continue
        if label == 0:
            np.not_equal(planes[p], 0, out=out[k])
        else:
            np.equal(planes[p], label, out=out[k])
        counts[k] = np.count_nonzero(out[k])
    return out, counts
