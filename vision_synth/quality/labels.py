"""Label sanity of a COCO dataset (every box inside its image and equal to its mask's extent, area equal
to the mask's pixel count, non-empty masks, minimum sizes, no crowd flags) and how its box sizes and
positions compare with a reference, per class: Wasserstein-1 distance and the two-sample KS statistic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from vision_synth import masks as mask_ops
from vision_synth.coco.reader import CocoDataset, is_synthetic

STATS = {
    "size": "√(box area / image area)",
    "aspect": "log(box width / height)",
    "x": "box centre x / image width",
    "y": "box centre y / image height",
}
MAX_EXAMPLES = 50


@dataclass(frozen=True)
class LabelIssue:
    annotation_id: int
    image_id: int
    kind: str
    detail: str


@dataclass
class LabelReport:
    issues_by_kind: dict[str, int]
    examples: list[LabelIssue]
    counts: dict[str, dict[str, int]]  # class → {"reference", "real", "synthetic"}
    empty_images: int
    # class (or "all") → stat → {"wasserstein", "ks", "n_synthetic", "n_reference"}
    distances: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # class (or "all") → stat → (synthetic values, reference values), for the figures
    values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict, repr=False)

    @property
    def issues(self) -> int:
        return int(sum(self.issues_by_kind.values()))

    def max_ks(self, stat: str = "size") -> float | None:
        ks = [d[stat]["ks"] for name, d in self.distances.items() if name != "all" and stat in d]
        return max(ks) if ks else None

    def to_json(self) -> dict[str, Any]:
        return {
            "issues": self.issues,
            "issues_by_kind": self.issues_by_kind,
            "examples": [e.__dict__ for e in self.examples],
            "empty_images": self.empty_images,
            "counts": self.counts,
            "statistics": STATS,
            "distribution_distances": self.distances,
        }


def _issues_of(ann: dict[str, Any], image: dict[str, Any], min_area: int, min_side: int) -> list[tuple[str, str]]:
    h, w = image["height"], image["width"]
    found = []
    x, y, bw, bh = ann["bbox"] if ann.get("bbox") is not None else (0, 0, 0, 0)
    if ann.get("iscrowd", 0):
        found.append(("crowd", "iscrowd is 1 (COCOeval ignores the instance)"))
    if x < 0 or y < 0 or x + bw > w or y + bh > h:
        found.append(("box outside image", f"bbox {ann['bbox']} in a {w}×{h} image"))
    if min(bw, bh) < min_side:
        found.append(("box too small", f"bbox {ann.get('bbox')} has a side under {min_side} px"))
    seg = ann.get("segmentation")
    if seg:
        mask = mask_ops.segmentation_to_mask(seg, h, w)
        area = int(mask.sum())
        if area == 0:
            found.append(("empty mask", "segmentation covers no pixel"))
            return found
        extent = list(mask_ops.mask_box(mask))
        if ann.get("bbox") is not None and [float(v) for v in ann["bbox"]] != [float(v) for v in extent]:
            found.append(("box differs from mask", f"bbox {ann['bbox']}, mask extent {extent}"))
        if ann.get("area") is not None and float(ann["area"]) != float(area):
            found.append(("area differs from mask", f"area {ann['area']}, mask pixels {area}"))
        if area < min_area:
            found.append(("mask too small", f"{area} px, fewer than {min_area}"))
    elif ann.get("area") is not None and ann["area"] < min_area:
        found.append(("mask too small", f"area {ann['area']}, under {min_area}"))
    return found


def box_statistics(dataset: CocoDataset, image_ids: set[int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """class name → {size, aspect, x, y} arrays over the non-crowd annotations (of `image_ids`)."""
    images = {im["id"]: im for im in dataset.images}
    names = dataset.category_names
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for ann in dataset.annotations:
        if ann.get("iscrowd", 0) or ann.get("bbox") is None:
            continue
        if image_ids is not None and ann["image_id"] not in image_ids:
            continue
        im = images[ann["image_id"]]
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        if bw <= 0 or bh <= 0:
            continue
        rows.setdefault(names[ann["category_id"]], []).append(
            (np.sqrt(bw * bh / (im["width"] * im["height"])), np.log(bw / bh), (x + bw / 2) / im["width"],
             (y + bh / 2) / im["height"]))
    out = {}
    for name, values in rows.items():
        arr = np.asarray(values, np.float64)
        out[name] = {stat: arr[:, k] for k, stat in enumerate(STATS)}
    return out


def check_labels(dataset: CocoDataset, reference: CocoDataset | None = None, min_area: int = 4,
                 min_side: int = 2) -> LabelReport:
    """Sanity issues of every annotation of `dataset`, class counts, and box-size/position distances
    to `reference` per class name (and over all classes)."""
    images = {im["id"]: im for im in dataset.images}
    kinds: Counter[str] = Counter()
    examples: list[LabelIssue] = []
    for ann in dataset.annotations:
        for kind, detail in _issues_of(ann, images[ann["image_id"]], min_area, min_side):
            kinds[kind] += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(LabelIssue(int(ann["id"]), int(ann["image_id"]), kind, detail))
    annotated = {a["image_id"] for a in dataset.annotations}
    empty = sum(1 for i in images if i not in annotated)

    names = dataset.category_names
    class_names = list(dict.fromkeys([c["name"] for c in dataset.categories]
                                     + ([c["name"] for c in reference.categories] if reference else [])))
    counts = {n: {"reference": 0, "real": 0, "synthetic": 0} for n in class_names}
    for ann in dataset.annotations:
        side = "synthetic" if is_synthetic(ann, images[ann["image_id"]]) else "real"
        counts[names[ann["category_id"]]][side] += 1
    if reference is not None:
        ref_names = reference.category_names
        for ann in reference.annotations:
            counts[ref_names[ann["category_id"]]]["reference"] += 1

    report = LabelReport(dict(kinds), examples, counts, empty)
    if reference is None:
        return report
    synthetic_ids = {i for i, im in images.items() if is_synthetic(im)}
    ours = box_statistics(dataset, synthetic_ids)
    theirs = box_statistics(reference)
    shared = [n for n in class_names if n in ours and n in theirs]
    groups = {n: (ours[n], theirs[n]) for n in shared}
    if shared:
        groups["all"] = ({s: np.concatenate([ours[n][s] for n in ours]) for s in STATS},
                         {s: np.concatenate([theirs[n][s] for n in theirs]) for s in STATS})
    for name, (a, b) in groups.items():
        report.distances[name] = {
            stat: {"wasserstein": float(wasserstein_distance(a[stat], b[stat])),
                   "ks": float(ks_2samp(a[stat], b[stat]).statistic),
                   "n_synthetic": int(len(a[stat])), "n_reference": int(len(b[stat]))}
            for stat in STATS}
        report.values[name] = {stat: (a[stat], b[stat]) for stat in STATS}
    return report
