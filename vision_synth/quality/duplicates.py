"""Near-duplicate images: a DCT perceptual hash (pHash) compared by Hamming distance, and the cosine
of image features centred on the reference mean; within the synthetic images and against the
reference. Removal rewrites the annotations without the duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
from scipy.fft import dctn

from vision_synth.files import write_json

HASH_SIDE = 8  # 8×8 low frequencies: 64 bits
RESIZE_SIDE = 32


def phash(image: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash of an RGB or grey image as 8 bytes: grey, resized to 32×32, 2-D DCT, the
    8×8 lowest frequencies compared with their median (the DC term left out of the median)."""
    image = np.asarray(image)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey.astype(np.float32), (RESIZE_SIDE, RESIZE_SIDE), interpolation=cv2.INTER_AREA)
    low = dctn(small.astype(np.float64), norm="ortho")[:HASH_SIDE, :HASH_SIDE]
    bits = low > np.median(low.ravel()[1:])
    return np.packbits(bits.ravel())


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (len(a) × len(b)) of packed hashes (rows of bytes)."""
    a = np.asarray(a, np.uint8).reshape(len(a), -1)
    b = np.asarray(b, np.uint8).reshape(len(b), -1)
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(axis=2, dtype=np.int64)


def hash_pairs(hashes: np.ndarray, other: np.ndarray | None, max_distance: int,
               chunk: int = 256) -> list[tuple[int, int, float]]:
    """(i, j, distance) of hash pairs within `max_distance` bits: i < j within `hashes` when `other`
    is None, else i in `hashes` and j in `other`."""
    pairs = []
    support = hashes if other is None else other
    for start in range(0, len(hashes), chunk):
        block = hamming(hashes[start : start + chunk], support)
        if other is None:  # only pairs i < j
            cols = np.arange(len(support))[None, :]
            rows = np.arange(start, start + len(block))[:, None]
            block = np.where(cols > rows, block, 65)
        rows, cols = np.nonzero(block <= max_distance)
        pairs += [(start + int(r), int(c), float(block[r, c])) for r, c in zip(rows, cols)]
    return pairs


def cosine_pairs(features: np.ndarray, other: np.ndarray | None, centre: np.ndarray, min_cosine: float,
                 chunk: int = 2048) -> list[tuple[int, int, float]]:
    """(i, j, cosine) of feature pairs at or above `min_cosine` after subtracting `centre`."""
    def unit(x):
        x = np.asarray(x, np.float64) - centre
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    a = unit(features)
    b = a if other is None else unit(other)
    pairs = []
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk] @ b.T
        if other is None:
            cols = np.arange(len(b))[None, :]
            rows = np.arange(start, start + len(block))[:, None]
            block = np.where(cols > rows, block, -2.0)
        rows, cols = np.nonzero(block >= min_cosine)
        pairs += [(start + int(r), int(c), float(block[r, c])) for r, c in zip(rows, cols)]
    return pairs


@dataclass(frozen=True)
class DuplicatePair:
    """Two images judged near-duplicates: `image_id` (synthetic) and `other_id` (synthetic with a
    smaller id, or a reference image), by `method` ('phash' bits or 'feature' cosine)."""

    image_id: int
    other_id: int
    against: str  # "synthetic" or "reference"
    method: str
    value: float


@dataclass
class DuplicateReport:
    n_images: int
    pairs: list[DuplicatePair] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    action: str = "report"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[int]:
        """Synthetic images to drop: the later image of each synthetic pair and every synthetic image
        that matches a reference image."""
        return sorted({p.image_id for p in self.pairs})

    @property
    def found_fraction(self) -> float:
        return len(self.flagged) / self.n_images if self.n_images else 0.0

    @property
    def remaining_fraction(self) -> float:
        """Share of the published images that are still flagged (0 after removal)."""
        left = set(self.flagged) - set(self.removed)
        kept = self.n_images - len(self.removed)
        return len(left) / kept if kept else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.n_images,
            "action": self.action,
            "settings": self.settings,
            "within_synthetic_pairs": sum(p.against == "synthetic" for p in self.pairs),
            "against_reference_pairs": sum(p.against == "reference" for p in self.pairs),
            "flagged_images": self.flagged,
            "found_fraction": self.found_fraction,
            "removed_images": self.removed,
            "remaining_fraction": self.remaining_fraction,
            "pairs": [p.__dict__ for p in self.pairs],
        }


def find_duplicates(image_ids: list[int], hashes: np.ndarray, reference_ids: list[int] | None = None,
                    reference_hashes: np.ndarray | None = None, phash_max_distance: int = 4,
                    feature_ids: list[int] | None = None, features: np.ndarray | None = None,
                    reference_feature_ids: list[int] | None = None, reference_features: np.ndarray | None = None,
                    feature_min_cosine: float | None = None) -> list[DuplicatePair]:
    """Near-duplicate pairs among synthetic images (ids in `image_ids`, hashes in that order) and
    against reference images; features (rows for `feature_ids`) add cosine pairs when given. A
    synthetic pair names the larger id as the duplicate, so the first image is kept."""
    pairs = []
    for i, j, d in hash_pairs(hashes, None, phash_max_distance):
        a, b = sorted((image_ids[i], image_ids[j]))
        pairs.append(DuplicatePair(b, a, "synthetic", "phash", d))
    if reference_hashes is not None and len(reference_hashes):
        for i, j, d in hash_pairs(hashes, reference_hashes, phash_max_distance):
            pairs.append(DuplicatePair(image_ids[i], reference_ids[j], "reference", "phash", d))
    if features is not None and feature_min_cosine is not None and len(features) > 1:
        with_reference = reference_features is not None and len(reference_features)
        centre = (reference_features if with_reference else features).mean(axis=0)
        for i, j, c in cosine_pairs(features, None, centre, feature_min_cosine):
            a, b = sorted((feature_ids[i], feature_ids[j]))
            pairs.append(DuplicatePair(b, a, "synthetic", "feature", round(c, 6)))
        if with_reference:
            for i, j, c in cosine_pairs(features, reference_features, centre, feature_min_cosine):
                pairs.append(DuplicatePair(feature_ids[i], reference_feature_ids[j], "reference", "feature",
                                           round(c, 6)))
    return pairs


def remove_images(annotations_path: Path, image_ids: Iterable[int]) -> int:
    """Rewrite a COCO file (atomically) without the given images and their annotations; ids are kept,
    so every record still traces back to its sample. The image files stay on disk. Returns how many
    images were dropped."""
    drop = set(int(i) for i in image_ids)
    data = json.loads(Path(annotations_path).read_text())
    before = len(data["images"])
    data["images"] = [im for im in data["images"] if im["id"] not in drop]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in drop]
    info = dict(data.get("info") or {})
    info["removed_duplicates"] = sorted(set(info.get("removed_duplicates", [])) | drop)
    data["info"] = info
    write_json(Path(annotations_path), data)
    return before - len(data["images"])
