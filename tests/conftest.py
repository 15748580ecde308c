"""Shared test helpers: small configs written to tmp_path, COCO checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write_config(tmp_path):
    """Write a dataset config (dict) as YAML under tmp_path and return its path."""

    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


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
        if iou_type == "segm" and isinstance(det["segmentation"], list):
            det["segmentation"] = gt.annToRLE(ann)
        dets.append(det)
    dt = gt.loadRes(dets)
    ev = COCOeval(gt, dt, iou_type)
    ev.params.maxDets = [1, 10, 1000]
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
