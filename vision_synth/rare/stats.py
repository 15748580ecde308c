"""What the real instances of a class look like, measured on the training part: their sizes, how
many an image holds, their orientations and their brightness and contrast. The paste defaults of
augment-rare follow these figures (a pasted nucleus is as large, as bright and as often turned as
the real ones), so nothing the user did not see in their own data is invented by default."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision_synth.coco.reader import CocoDataset
from vision_synth.spec import ColorJitter

ELONGATED = 1.5  # major / minor axis: below it an instance has no orientation to speak of
ALIGNED_SPREAD = 30.0  # degrees: orientations this concentrated are kept (rotation limited)
JITTER_LIMITS = (0.7, 1.3)  # brightness and contrast factors stay within these whatever the spread


@dataclass(frozen=True)
class ClassStats:
    """Per real instance of one class (training part): arrays in annotation order."""

    sizes: np.ndarray  # longest box side / the image's shorter side
    angles: np.ndarray  # orientation in degrees [0, 180) of the elongated instances
    elongated: float  # share of instances with a major/minor axis ratio of at least ELONGATED
    brightness: np.ndarray  # mean intensity inside the mask / the class median
    contrast: np.ndarray  # intensity spread inside the mask / the class median
    grey: bool  # every image holding the class is greyscale (R = G = B)

    @property
    def count(self) -> int:
        return len(self.sizes)

    def scale(self) -> tuple[float, float]:
        """The range of sizes (longest side / image's shorter side) a pasted instance is drawn from."""
        if not self.count:
            return (0.05, 0.2)
        return (float(self.sizes.min()), float(self.sizes.max()))

    def orientation_spread(self) -> float:
        """Axial circular standard deviation of the elongated instances' orientations, in degrees
        (infinite when too few are elongated for an orientation to mean anything)."""
        if len(self.angles) < 3 or self.elongated < 0.5:
            return float("inf")
        doubled = np.deg2rad(2.0 * self.angles)
        r = float(np.hypot(np.cos(doubled).mean(), np.sin(doubled).mean()))
        return float(np.rad2deg(np.sqrt(-2.0 * np.log(max(r, 1e-12)))) / 2.0)

    def rotation(self) -> tuple[float, float]:
        """Any turn for round or randomly oriented instances; aligned ones (scratches along the grain)
        are turned only as far as the real ones vary."""
        spread = self.orientation_spread()
        if spread >= ALIGNED_SPREAD:
            return (-180.0, 180.0)
        half = max(2.0 * spread, 5.0)
        return (-half, half)

    def color_jitter(self) -> ColorJitter:
        """Brightness and contrast factors over the real instances' own spread (10th to 90th
        percentile, always including 1); greyscale data keep saturation and hue untouched."""
        def spread(values: np.ndarray) -> tuple[float, float]:
            if len(values) < 2:
                return (1.0, 1.0)
            lo, hi = np.percentile(values, [10, 90])
            return (float(np.clip(min(lo, 1.0), *JITTER_LIMITS)), float(np.clip(max(hi, 1.0), *JITTER_LIMITS)))

        saturation = (1.0, 1.0) if self.grey else (0.9, 1.1)
        return ColorJitter(brightness=spread(self.brightness), contrast=spread(self.contrast), saturation=saturation)


def class_stats(dataset: CocoDataset, image_ids: set[int], category_id: int) -> ClassStats:
    """The statistics of `category_id`'s non-crowd instances on `image_ids`."""
    sizes, angles, ratios, means, spreads = [], [], [], [], []
    grey = True
    for image in sorted(dataset.images, key=lambda im: im["id"]):
        if image["id"] not in image_ids:
            continue
        anns = dataset.annotations_of(image["id"])
        if not any(a["category_id"] == category_id and not a.get("iscrowd", 0) for a in anns):
            continue
        pixels = dataset.read_image(image)
        grey = grey and bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
        luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        inst = dataset.instances(image)
        shorter = min(image["height"], image["width"])
        for ann, mask, box in zip(anns, inst.masks, inst.boxes):
            if ann["category_id"] != category_id or ann.get("iscrowd", 0) or not mask.any():
                continue
            sizes.append(max(box[2], box[3]) / shorter)
            angle, ratio = _orientation(mask)
            ratios.append(ratio)
            if ratio >= ELONGATED:
                angles.append(angle)
            inside = luma[mask]
            means.append(float(inside.mean()))
            spreads.append(float(inside.std()))
    means_a, spreads_a = np.asarray(means, float), np.asarray(spreads, float)
    return ClassStats(
        sizes=np.asarray(sizes, float), angles=np.asarray(angles, float),
        elongated=float(np.mean(np.asarray(ratios) >= ELONGATED)) if ratios else 0.0,
        brightness=_relative(means_a), contrast=_relative(spreads_a), grey=grey)


def _relative(values: np.ndarray) -> np.ndarray:
    median = float(np.median(values)) if len(values) else 0.0
    return values / median if median > 0 else np.ones_like(values)


def _orientation(mask: np.ndarray) -> tuple[float, float]:
    """(angle of the major axis in degrees [0, 180), major/minor axis ratio) from the mask's moments."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return 0.0, 1.0
    xs, ys = xs - xs.mean(), ys - ys.mean()
    cov = np.array([[np.mean(xs * xs), np.mean(xs * ys)], [np.mean(xs * ys), np.mean(ys * ys)]])
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    angle = float(np.rad2deg(np.arctan2(major[1], major[0]))) % 180.0
    ratio = float(np.sqrt(values[1] / max(values[0], 1e-6)))
    return angle, ratio
