"""Objects to paste: RGBA cutouts from a folder and instance crops from a COCO dataset, with scale,
rotation, flip and colour jitter, turned into Layers ready for placement."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from vision_synth.coco.reader import load_coco
from vision_synth.errors import DatasetError
from vision_synth.imageio import IMAGE_SUFFIXES, has_alpha, read_image
from vision_synth.masks import box_slices
from vision_synth.scene.layers import Layer
from vision_synth.spec import uniform


@dataclass(frozen=True, eq=False)
class Cutout:
    """An object's colours (h×w×3 float32, 0..255) and alpha (h×w float32, 0..1), cropped tight."""

    rgb: np.ndarray
    alpha: np.ndarray
    origin: str  # file (and annotation) it came from

    @cached_property
    def _levels(self) -> list[np.ndarray]:
        return [_with_margin(_straight_rgba(self.rgb, self.alpha))]

    def level(self, factor: float) -> tuple[np.ndarray, float]:
        """The RGBA source to warp for a scale `factor`, and the factor left to apply to it.

        Sources are straight (not premultiplied) RGBA whose transparent pixels carry the colour of
        the nearest visible one, with a transparent margin of `_MARGIN` pixels of edge colour:
        bilinear sampling then never mixes a transparent pixel's colour into an edge. Shrinking
        by more than 2× starts from a level halved with INTER_AREA (built once, then cached), so
        that large crops are not aliased.
        """
        levels, k = self._levels, 0
        longest = max(self.alpha.shape)
        left = factor
        while left < 0.5 and min(levels[k].shape[:2]) - 2 * _MARGIN >= 16:  # halve down to 8 px
            if k + 1 == len(levels):
                inner = levels[k][_MARGIN:-_MARGIN, _MARGIN:-_MARGIN]
                size = ((inner.shape[1] + 1) // 2, (inner.shape[0] + 1) // 2)
                levels.append(_with_margin(cv2.resize(inner, size, interpolation=cv2.INTER_AREA)))
            k += 1
            left = factor * longest / (max(levels[k].shape[:2]) - 2 * _MARGIN)
        return levels[k], left


def _straight_rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """h×w×4 float32: `rgb` with every fully transparent pixel given the colour of the nearest
    pixel that is not, then `alpha`."""
    clear = alpha <= 0.0
    if clear.any() and not clear.all():
        # labels: for each pixel, the number of its nearest visible pixel (visible pixels are
        # numbered 1..n in scan order, each its own nearest)
        _, labels = cv2.distanceTransformWithLabels(clear.view(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        palette = np.zeros((int(labels.max()) + 1, 3), np.float32)
        palette[labels[~clear]] = rgb[~clear]
        rgb = palette[labels]
    return cv2.merge([*cv2.split(np.asarray(rgb, np.float32)), np.asarray(alpha, np.float32)])


_MARGIN = 8  # source pixels of edge colour around a cutout: room for a feathered edge (see _warp)


def _with_margin(rgba: np.ndarray, margin: int = _MARGIN) -> np.ndarray:
    """`rgba` with a border of `margin` pixels: colours repeated, alpha 0."""
    out = cv2.copyMakeBorder(rgba, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    out[:margin, :, 3] = out[-margin:, :, 3] = out[:, :margin, 3] = out[:, -margin:, 3] = 0.0
    return out


def trim_cutout(rgb: np.ndarray, alpha: np.ndarray, origin: str) -> Cutout:
    """A Cutout of `rgb` and `alpha` cropped to the pixels of alpha ≥ 0.5 (an error naming `origin`
    when there are none)."""
    visible = alpha >= 0.5
    if not visible.any():
        raise DatasetError(f"{origin}: the cutout is fully transparent")
    box = box_slices(visible)
    return Cutout(np.ascontiguousarray(rgb[box]), np.ascontiguousarray(alpha[box]), origin)


def load_sprite_folder(folder: Path) -> list[Cutout]:
    """Every image with an alpha channel in `folder` (sorted by name)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: sprite folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images in sprite folder")
    cutouts = []
    for path in files:
        if not has_alpha(path):
            raise DatasetError(f"{path}: sprite has no alpha channel (save cutouts as RGBA PNG)")
        rgba = read_image(path, "RGBA").astype(np.float32)
        cutouts.append(trim_cutout(rgba[..., :3], rgba[..., 3] / 255.0, str(path)))
    return cutouts


def load_coco_crops(annotations: Path, images: Path, category: str) -> list[Cutout]:
    """Instance crops (pixels inside each mask) of one category of a COCO dataset."""
    dataset = load_coco(annotations, images)
    ids = [c["id"] for c in dataset.categories if c["name"] == category]
    if not ids:
        names = ", ".join(c["name"] for c in dataset.categories)
        raise DatasetError(f"{annotations}: no category named {category!r} (has: {names})")
    cutouts = []
    for image in dataset.images:
        anns = [a for a in dataset.annotations_of(image["id"]) if a["category_id"] == ids[0]]
        if not anns:
            continue
        pixels = dataset.read_image(image).astype(np.float32)
        inst = dataset.instances(image)
        for ann, mask, approx in zip(dataset.annotations_of(image["id"]), inst.masks, inst.attributes["approximate"]):
            if ann["category_id"] != ids[0] or ann.get("iscrowd", 0) or approx:
                continue  # box-only annotations have no exact shape to cut
            cutouts.append(trim_cutout(pixels, mask.astype(np.float32), f"{annotations} annotation {ann['id']}"))
    if not cutouts:
        raise DatasetError(f"{annotations}: no instance with a mask of category {category!r}")
    return cutouts


def jitter_colors(rgb: np.ndarray, rng: np.random.Generator, jitter) -> np.ndarray:
    """Brightness, contrast and saturation factors and a hue shift (degrees) drawn from `jitter`."""
    b, c, s, hue = (uniform(rng, jitter.brightness), uniform(rng, jitter.contrast),
                    uniform(rng, jitter.saturation), uniform(rng, jitter.hue))
    if b == 1.0 and c == 1.0 and s == 1.0 and hue == 0.0:
        return rgb  # no jitter configured: the colours as they are
    out = rgb * b
    if c != 1.0:
        out = (out - out.mean()) * c + out.mean()
    if s != 1.0:
        gray = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = gray[..., None] + (out - gray[..., None]) * s
    if hue != 0.0:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + hue) % 360.0
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    return np.clip(out, 0, 255).astype(np.float32)


def _warp(cutout: Cutout, rng: np.random.Generator, spec, image_hw: tuple[int, int],
          pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scale (longest side = scale × image's shorter side), rotate and flip `cutout` onto a canvas
    that holds the result plus `pad` pixels each side: (straight RGBA h×w×4, and its alpha clipped
    to 1, h×w), float32. One warp of straight RGBA (see `Cutout.level`); the flip is folded into it. Within
    `pad` of the object the colours are its edge colours (outside the source's margin they would
    be black, so a margin too narrow for `pad` is widened first)."""
    # at least a pixel: a smaller object is its most opaque pixel anyway, and widening the margin for
    # `pad` at a vanishing factor would take pad / factor source pixels
    longest = max(1.0, uniform(rng, spec.scale) * min(image_hw))
    factor = longest / max(cutout.alpha.shape)
    angle = uniform(rng, spec.rotation)
    flip = spec.flip and rng.random() < 0.5
    source, factor = cutout.level(factor)
    h, w = source.shape[0] - 2 * _MARGIN, source.shape[1] - 2 * _MARGIN  # without the margin
    if pad > (_MARGIN - 1) * factor:
        extra = int(np.ceil(pad / factor)) + 1 - _MARGIN
        source = _with_margin(source[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN], _MARGIN + extra)
    matrix = cv2.getRotationMatrix2D(((source.shape[1] - 1) / 2, (source.shape[0] - 1) / 2), angle, factor)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w = max(1, int(np.ceil(h * sin + w * cos))) + 2 * pad
    out_h = max(1, int(np.ceil(h * cos + w * sin))) + 2 * pad
    matrix[0, 2] += (out_w - source.shape[1]) / 2
    matrix[1, 2] += (out_h - source.shape[0]) / 2
    if flip:  # x → out_w − 1 − x
        matrix[0] *= -1.0
        matrix[0, 2] += out_w - 1
    warped = cv2.warpAffine(source, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    warped = warped.reshape(out_h, out_w, 4)
    return warped, cv2.min(cv2.extractChannel(warped, 3), 1.0)


def _colours(rgba: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """The colours of `rgba` inside `box`, contiguous h×w×3 float32 (one OpenCV copy: numpy's copy
    of a 3-of-4-channel view is ten times slower)."""
    window = rgba[box]
    return cv2.cvtColor(window, cv2.COLOR_RGBA2RGB).reshape(*window.shape[:2], 3)


def transform_cutout(cutout: Cutout, rng: np.random.Generator, spec, image_hw: tuple[int, int]) -> Cutout:
    """Scale (longest side = scale × image's shorter side), rotate and flip; trimmed to alpha ≥ 0.5
    (at least one pixel: the most opaque, should the cutout shrink below a pixel)."""
    rgba, alpha = _warp(cutout, rng, spec, image_hw)
    alpha = _never_empty(alpha)
    box = box_slices(alpha >= 0.5)
    return Cutout(_colours(rgba, box), np.ascontiguousarray(alpha[box]), cutout.origin)


def _never_empty(alpha: np.ndarray) -> np.ndarray:
    """`alpha`, or when no pixel reaches one half (scaled below a pixel), its most opaque pixels."""
    peak = cv2.minMaxLoc(alpha)[1]  # the float32 maximum, exactly
    return alpha if peak >= 0.5 else (alpha >= peak).astype(np.float32)


def object_layer(cutouts: list[Cutout], spec, blend, rng: np.random.Generator,
                 image_hw: tuple[int, int], category_id: int, source: str = "procedural") -> Layer:
    """One object instance: a random cutout, transformed, colour-jittered, alpha set by blend mode."""
    mode = spec.blend or blend.mode
    pad = math.ceil(3 * blend.feather) if mode == "feather" else 0  # room for the softened edge
    rgba, alpha = _warp(cutouts[int(rng.integers(len(cutouts)))], rng, spec, image_hw, pad)
    alpha = _never_empty(alpha)
    if mode == "feather":
        alpha = _never_empty(cv2.GaussianBlur(alpha, (0, 0), blend.feather))
    else:  # hard and poisson
        alpha = (alpha >= 0.5).astype(np.float32)
    box = box_slices(alpha > 0.0)
    rgb = jitter_colors(_colours(rgba, box), rng, spec.color_jitter)
    return Layer.solid(np.ascontiguousarray(alpha[box]), rgb, category_id, source,
                       blend="poisson" if mode == "poisson" else "alpha")
