"""Fidelity with one reference image (tests/assets/nuclei_dev/train_few, a real 128×128 few-shot
image): the statistics run on tiles of both sides instead of being skipped, say so, and still tell
data like the reference (flips and rotations of it) from data unlike it (the same images inverted)."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import write_coco_dataset
from vision_synth.coco.reader import load_coco
from vision_synth.publish import check_and_publish
from vision_synth.quality.spec import load_quality_spec
from vision_synth.scene.objects import read_image
from vision_synth.types import Instances, Provenance, Sample

pytest.importorskip("torch_fidelity", reason="the check's features need torch-fidelity (the fid extra)")

TRAIN_FEW = Path(__file__).resolve().parents[1] / "assets" / "nuclei_dev" / "train_few"
FLIPS = [lambda a: a, lambda a: a[::-1], lambda a: a[:, ::-1], lambda a: np.rot90(a), lambda a: np.rot90(a, 2),
         lambda a: np.rot90(a, 3)]


def _variants(invert: bool) -> list[Sample]:
    """Flips and rotations of the one reference image, with their masks; inverted colours on request."""
    real = load_coco(TRAIN_FEW / "annotations.json", TRAIN_FEW / "images")
    image = real.images[0]
    pixels = read_image(real.image_file(image))
    instances = real.instances(image)
    out = []
    for k, f in enumerate(FLIPS):
        picture = np.ascontiguousarray(f(pixels))
        masks = np.stack([np.ascontiguousarray(f(m)) for m in instances.masks])
        out.append(Sample(k, 0, 255 - picture if invert else picture, Instances(masks, instances.category_ids),
                          Provenance("procedural", synthetic=True)))
    return out


def _check(tmp_path, name: str, invert: bool):
    write_coco_dataset(tmp_path / name, _variants(invert), category_names={1: "nucleus"})
    spec = load_quality_spec(None, **{"fidelity.features": "proxy", "fidelity.kid_subsets": 10,
                                      "fidelity.kid_subset_size": 40, "fidelity.pr_min_samples": 20,
                                      "fidelity.per_class": False, "sample_grid": 0, "gate.fid_proxy_max": 1e9,
                                      "gate.min_precision": 0.0})
    report = check_and_publish(tmp_path / name, spec, reference=TRAIN_FEW / "annotations.json",
                               reference_images=TRAIN_FEW / "images", progress=False)
    return report, json.loads((tmp_path / name / "quality.json").read_text())


def test_one_reference_image_is_measured_on_tiles_and_says_so(tmp_path, small_inception):
    like, data = _check(tmp_path, "flips", invert=False)
    unlike, _ = _check(tmp_path, "inverted", invert=True)

    fidelity = data["fidelity"]
    # 128 px image, tiles of 128/4 = 32 px with stride 16: 7 × 7 tiles of the one reference image
    assert fidelity["unit"] == "tiles" and fidelity["tiles"]["reference"] == 49
    assert fidelity["tiles"]["synthetic"] == 6 * 49  # every tile of the six flips (under max_images)
    assert "tiles" in fidelity["unit_note"] and "1 images" in fidelity["unit_note"]
    assert any("measured on tiles" in n for n in data["notes"])
    assert "measured on tiles" in (tmp_path / "flips" / "report.html").read_text()
    # measured, so the gates on it are decided (not "not measured")
    assert data["not_measured"] == [] and data["passed"] is True
    assert fidelity["precision_proxy"] is not None and fidelity["recall_proxy"] is not None
    # and the figures mean something: flips of the reference are far closer than inverted copies
    assert like.fidelity.fid < 0.5 * unlike.fidelity.fid
    assert like.fidelity.precision > unlike.fidelity.precision
