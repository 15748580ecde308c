"""Inpainting small instances at their own scale: a square crop around each planned mask, with
context, resized to the model's resolution, and the result pasted back feathered inside the mask.

A defect of 20 pixels in a 512² frame is 2-3 latent cells: inpainted full frame it is barely drawn.
In a crop three times its size, resized to 512², it covers a good part of the model's canvas, as
the objects in its training images did. Any image size works: crops are resized, never padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """A square window of an image: rows y..y+side, columns x..x+side."""

    y: int
    x: int
    side: int

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.side, self.x : self.x + self.side]


def crop_window(mask: np.ndarray, context: float) -> Window:
    """The square around `mask`'s box, grown by `context` × its longest side on each side, moved
    inside the image (its side at most the image's shorter side)."""
    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    longest = max(y1 - y0, x1 - x0)
    side = int(min(min(height, width), max(8, round(longest * (1 + 2 * context)))))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    y = int(np.clip(round(cy - side / 2), 0, height - side))
    x = int(np.clip(round(cx - side / 2), 0, width - side))
    return Window(y, x, side)


def resize_image(image: np.ndarray, side: int) -> np.ndarray:
    """A square RGB image resized to side × side (area when shrinking, bicubic when growing)."""
    if image.shape[0] == side:
        return image.copy()
    interpolation = cv2.INTER_AREA if image.shape[0] > side else cv2.INTER_CUBIC
    return cv2.resize(image, (side, side), interpolation=interpolation)


def resize_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """A square mask resized to side × side; a pixel touched by the mask stays in it (thin
    defects must not vanish when shrunk)."""
    if mask.shape[0] == side:
        return mask.copy()
    return cv2.resize(mask.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA) > 0


def feather_alpha(mask: np.ndarray, feather: int) -> np.ndarray:
    """H×W float32 opacity: 0 outside `mask`, rising from its edge to 1 over `feather` pixels
    (edge pixels at 1/feather), so a pasted instance has no hard seam and no pixel outside it."""
    if feather <= 0:
        return mask.astype(np.float32)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(inside / feather, 0.0, 1.0).astype(np.float32)


def paste_feathered(image: np.ndarray, source: np.ndarray, mask: np.ndarray, feather: int) -> np.ndarray:
    """`image` with `source` blended in inside `mask` (uint8 arrays of one shape)."""
    alpha = feather_alpha(mask, feather)[..., None]
    out = image.astype(np.float32) * (1 - alpha) + source.astype(np.float32) * alpha
    result = image.copy()
    result[mask] = np.clip(np.round(out[mask]), 0, 255).astype(np.uint8)
    return result
