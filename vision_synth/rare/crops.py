"""Instance crops of one class, from the training images only: the pixels inside each mask, or for a
box-only annotation inside a feathered ellipse fitted to the box (a box is all the shape we know)."""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from vision_synth.coco.reader import CocoDataset
from vision_synth.masks import mask_box
from vision_synth.scene.objects import Cutout, trim_cutout


def ellipse_alpha(height: int, width: int, feather: float = 1.0) -> np.ndarray:
    """Alpha of the ellipse inscribed in an h×w box, its edge softened by `feather` pixels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ry, rx = height / 2.0, width / 2.0
    r = np.sqrt(((yy + 0.5 - ry) / ry) ** 2 + ((xx + 0.5 - rx) / rx) ** 2)
    edge = max(feather, 1e-3) / max(min(ry, rx), 1.0)
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def instance_alpha(mask: np.ndarray, approximate: bool, box: Iterable[int]) -> np.ndarray:
    """The full-image alpha of an instance: its mask, or the ellipse of its box when box-only."""
    if not approximate:
        return mask.astype(np.float32)
    x, y, w, h = (int(v) for v in box)
    alpha = np.zeros(mask.shape, np.float32)
    alpha[y : y + h, x : x + w] = ellipse_alpha(h, w)
    if not (alpha >= 0.5).any():
        alpha[y : y + h, x : x + w] = 1.0
    return alpha


def class_crops(dataset: CocoDataset, image_ids: Iterable[int], category_id: int) -> list[Cutout]:
    """Cutouts of every non-crowd instance of `category_id` on the images `image_ids` (id order)."""
    wanted = set(image_ids)
    cutouts = []
    for image in sorted(dataset.images, key=lambda im: im["id"]):
        if image["id"] not in wanted:
            continue
        anns = dataset.annotations_of(image["id"])
        if not any(a["category_id"] == category_id and not a.get("iscrowd", 0) for a in anns):
            continue
        pixels = dataset.read_image(image).astype(np.float32)
        inst = dataset.instances(image)
        for ann, mask, approx, box in zip(anns, inst.masks, inst.attributes["approximate"], inst.boxes):
            if ann["category_id"] != category_id or ann.get("iscrowd", 0):
                continue
            origin = f"{dataset.path} annotation {ann['id']}"
            cutouts.append(trim_cutout(pixels, instance_alpha(mask, bool(approx), box), origin))
    return cutouts


def context_crop(pixels: np.ndarray, alpha: np.ndarray, size: int, margin: float = 0.25) -> np.ndarray:
    """size×size×4 float32 (RGB 0..255, mask 0/1) of the square around an instance with `margin` of
    context each side; for training the learned source on defect + surrounding surface together."""
    x, y, w, h = mask_box(alpha >= 0.5)
    cy, cx = (2 * y + h) / 2.0, (2 * x + w) / 2.0
    side = max(h, w) * (1 + 2 * margin)
    side = max(side, 8.0)
    h, w = alpha.shape
    scale = size / side
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], np.float32)
    rgb = cv2.warpAffine(pixels.astype(np.float32), matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(alpha.astype(np.float32), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.dstack([rgb, (mask >= 0.5).astype(np.float32)])
