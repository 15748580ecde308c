"""Plain helpers shared by the tests (import them: `from helpers import small_config`); the
fixtures live in the conftest.py of each folder. Small configs, exact-label checks of COCO files,
synthetic samples with exact masks, and a COCO dataset written with the project's writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def small_config(**changes) -> dict:
    """A small surface-defects config (96×96) that exercises every defect kind."""
    data = {
        "name": "tiny",
        "seed": 3,
        "num_images": 8,
        "image": {"width": 96, "height": 96, "format": "png"},
        "scene": "surface_defects",
    }
    data.update(changes)
    return data


def coco_self_eval(annotations: Path, iou_type: str) -> float:
    """COCOeval AP of the ground truth scored against itself (should be exactly 1.0)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(annotations))
    dets = []
    for ann in gt.dataset["annotations"]:
        det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
        det["bbox" if iou_type == "bbox" else "segmentation"] = ann["bbox" if iou_type == "bbox" else "segmentation"]
        if iou_type == "segm":  # polygons and uncompressed RLE as compressed RLE
            det["segmentation"] = gt.annToRLE(ann)
        dets.append(det)
    dt = gt.loadRes(dets)
    ev = COCOeval(gt, dt, iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


def check_coco_labels(annotations: Path) -> dict:
    """Assert the labels of a COCO file are exact; returns the parsed json."""
    from vision_synth import masks as mask_ops

    data = json.loads(Path(annotations).read_text())
    images = {im["id"]: im for im in data["images"]}
    ids = [a["id"] for a in data["annotations"]]
    assert ids == list(range(1, len(ids) + 1)), "annotation ids must run from 1 without gaps"
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        mask = mask_ops.segmentation_to_mask(ann["segmentation"], im["height"], im["width"])
        assert mask.any(), f"empty mask in annotation {ann['id']}"
        assert ann["area"] == int(mask.sum()), f"area != pixel count in annotation {ann['id']}"
        assert ann["bbox"] == mask_ops.derive_boxes(mask[None])[0].tolist(), f"bbox != mask extent in {ann['id']}"
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= im["width"] and y + h <= im["height"]
        assert ann["iscrowd"] == 0
        if isinstance(ann["segmentation"], list):
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
    return data


def synthetic_samples(n_images: int = 6, size: tuple[int, int] = (64, 80), categories=(1, 2, 3), seed: int = 0):
    """Samples with random filled ellipses and rectangles (exact masks), textured background."""
    import cv2

    from vision_synth.seeding import rng_for
    from vision_synth.types import Instances, Provenance, Sample

    h, w = size
    samples = []
    for i in range(n_images):
        rng = rng_for(seed, i)
        image = (rng.random((h, w, 3)) * 60 + 80).astype(np.uint8)
        masks = []
        cats = []
        for k in range(int(rng.integers(1, 5))):
            m = np.zeros((h, w), np.uint8)
            cy, cx = int(rng.integers(8, h - 8)), int(rng.integers(8, w - 8))
            if k % 2:
                cv2.ellipse(m, (cx, cy), (int(rng.integers(3, 12)), int(rng.integers(3, 10))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
            else:
                m[max(cy - 6, 0) : cy + int(rng.integers(2, 8)), max(cx - 5, 0) : cx + int(rng.integers(2, 9))] = 1
            m = m.astype(bool)
            for prev in masks:  # later shapes lie on top
                prev &= ~m
            color = rng.integers(0, 255, 3)
            image[m] = color
            masks.append(m)
            cats.append(int(categories[k % len(categories)]))
        inst = Instances(np.stack(masks), cats).without_empty()
        samples.append(Sample(i, seed, image, inst, Provenance("test", synthetic=False)))
    return samples


def write_coco_dataset(root: Path, samples, segmentation: str = "rle", category_names=None) -> tuple[Path, Path]:
    """Write samples as a COCO dataset (root/images, root/annotations.json) with the project's writer."""
    from vision_synth.coco.writer import ShardWriter, image_file_name, sample_records, write_annotations
    from vision_synth.imageio import write_image

    root = Path(root)
    shard = root / "shard.jsonl"
    cat_ids = sorted({int(c) for s in samples for c in s.instances.category_ids} | set(category_names or {}))
    names = category_names or {c: f"class{c}" for c in cat_ids}
    with ShardWriter(shard) as writer:
        for s in samples:
            name = image_file_name(s.index, "png")
            write_image(root / "images" / name, s.image, "png")
            writer.add(sample_records(s, name, segmentation))
    cats = [{"id": c, "name": names[c], "supercategory": "none"} for c in sorted(names)]
    write_annotations(root / "annotations.json", [shard], {"description": "test"}, cats)
    shard.unlink()
    return root / "annotations.json", root / "images"
