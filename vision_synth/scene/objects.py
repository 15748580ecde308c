"""Objects to paste: RGBA cutouts from a folder and instance crops from a COCO dataset, with scale,
rotation, flip and colour jitter, turned into Layers ready for placement."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vision_synth.coco.reader import load_coco
from vision_synth.errors import DatasetError
from vision_synth.scene.layers import Layer
from vision_synth.spec import uniform

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, eq=False)
class Cutout:
    """An object's colours (h×w×3 float32, 0..255) and alpha (h×w float32, 0..1), cropped tight."""

    rgb: np.ndarray
    alpha: np.ndarray
    origin: str  # file (and annotation) it came from

    @cached_property
    def premultiplied(self) -> np.ndarray:
        """h×w×4 float32: colours times alpha, then alpha (what is warped, so edges do not bleed)."""
        return cv2.merge([*cv2.split(self.rgb * self.alpha[..., None]), self.alpha])


def _trim(rgb: np.ndarray, alpha: np.ndarray, origin: str) -> Cutout:
    ys, xs = np.nonzero(alpha >= 0.5)
    if ys.size == 0:
        raise DatasetError(f"{origin}: the cutout is fully transparent")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Cutout(np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(alpha[y0:y1, x0:x1]), origin)


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Decode an image file to an array, with an error that names the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def load_sprite_folder(folder: Path) -> list[Cutout]:
    """Every image with an alpha channel in `folder` (sorted by name)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: sprite folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images in sprite folder")
    cutouts = []
    for path in files:
        try:
            with Image.open(path) as im:
                if "A" not in im.getbands() and "transparency" not in im.info:
                    raise DatasetError(f"{path}: sprite has no alpha channel (save cutouts as RGBA PNG)")
                rgba = np.asarray(im.convert("RGBA"), np.float32)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read image ({exc})") from None
        cutouts.append(_trim(rgba[..., :3], rgba[..., 3] / 255.0, str(path)))
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
        pixels = read_image(dataset.image_file(image)).astype(np.float32)
        inst = dataset.instances(image)
        for ann, mask, approx in zip(dataset.annotations_of(image["id"]), inst.masks, inst.attributes["approximate"]):
            if ann["category_id"] != ids[0] or ann.get("iscrowd", 0) or approx:
                continue  # box-only annotations have no exact shape to cut
            cutouts.append(_trim(pixels, mask.astype(np.float32), f"{annotations} annotation {ann['id']}"))
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


def transform_cutout(cutout: Cutout, rng: np.random.Generator, spec, image_hw: tuple[int, int]) -> Cutout:
    """Scale (longest side = scale × image's shorter side), rotate, flip; colours are warped
    premultiplied by alpha so transparent pixels do not bleed into edges."""
    longest = uniform(rng, spec.scale) * min(image_hw)
    factor = longest / max(cutout.alpha.shape)
    angle = uniform(rng, spec.rotation)
    flip = spec.flip and rng.random() < 0.5
    h, w = cutout.alpha.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, factor)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w = max(1, int(np.ceil(h * sin + w * cos)))
    out_h = max(1, int(np.ceil(h * cos + w * sin)))
    matrix[0, 2] += out_w / 2 - w / 2
    matrix[1, 2] += out_h / 2 - h / 2
    interp = cv2.INTER_AREA if factor < 1 and angle == 0 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(cutout.premultiplied, matrix, (out_w, out_h), flags=interp,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if flip:
        warped = cv2.flip(warped, 1)
    *premultiplied, alpha = cv2.split(warped.reshape(out_h, out_w, 4))
    np.clip(alpha, 0.0, 1.0, out=alpha)
    x, y, w, h = cv2.boundingRect((alpha >= 0.5).view(np.uint8))
    if w == 0:  # scaled below a pixel: keep the brightest-alpha pixel
        alpha = (alpha >= alpha.max()).astype(np.float32)
        x, y, w, h = cv2.boundingRect((alpha > 0).view(np.uint8))
    alpha = np.ascontiguousarray(alpha[y : y + h, x : x + w])
    inverse = 1.0 / np.maximum(alpha, 1e-6)  # un-premultiply inside the trimmed window only
    rgb = cv2.merge([cv2.multiply(c[y : y + h, x : x + w], inverse) for c in premultiplied])
    return Cutout(rgb, alpha, cutout.origin)


def object_layer(cutouts: list[Cutout], spec, blend, rng: np.random.Generator,
                 image_hw: tuple[int, int], category_id: int, source: str = "procedural") -> Layer:
    """One object instance: a random cutout, transformed, colour-jittered, alpha set by blend mode."""
    cutout = transform_cutout(cutouts[int(rng.integers(len(cutouts)))], rng, spec, image_hw)
    rgb = jitter_colors(cutout.rgb, rng, spec.color_jitter)
    mode = spec.blend or blend.mode
    alpha = cutout.alpha
    if mode in ("hard", "poisson"):
        alpha = (alpha >= 0.5).astype(np.float32)
    else:  # feather: soften the edge, keep a margin so the blur is not clipped
        pad = int(np.ceil(3 * blend.feather))
        alpha = cv2.GaussianBlur(cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0),
                                 (0, 0), blend.feather)
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        if not (alpha >= 0.5).any():
            alpha = (alpha >= alpha.max()).astype(np.float32)
    return Layer.solid(np.ascontiguousarray(alpha, np.float32), rgb, category_id, source,
                       blend="poisson" if mode == "poisson" else "alpha")
