import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import check_coco_labels
from rare_helpers import run, write_rare_dataset
from vision_synth.rare.dataset import augment_rare
from vision_synth.rare.policy import load_policy
from vision_synth.scene.objects import read_image

TINY_CLIP = Path(__file__).resolve().parents[1] / "assets" / "tiny_clip"


@pytest.fixture(scope="module")
def tiny_inpaint(tmp_path_factory):
    from vision_synth.diffusion.tiny import save_tiny_models

    return save_tiny_models(tmp_path_factory.mktemp("tiny"), TINY_CLIP).inpaint


def _policy(model) -> dict:
    return {"target_per_class": 6, "eval": {"ratio": 0.25}, "max_synthetic_fraction": 0.75,
            "classes": {"crack": {"source": "inpaint", "inpaint": {
                "mode": "inpaint-insert", "model": str(model), "steps": 2, "device": "cpu", "safety_checker": False,
                "prompts": {"crack": {"prompt": "a crack on a metal surface"}}}},
                "scratch": {"target": 0}, "stain": {"target": 0}}}


def test_inpaint_source_keeps_pixels_outside_its_labels(tmp_path, tiny_inpaint, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset = write_rare_dataset(tmp_path / "ds")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_policy(tiny_inpaint)))
    summary = augment_rare(*dataset, load_policy(tmp_path / "p.yaml"), tmp_path / "out", show_progress=False)
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    painted = [a for a in data["annotations"] if a.get("source") == "inpaint"]
    assert len(painted) == summary.added[3] > 0
    originals = {im["id"]: im for im in json.loads(dataset[0].read_text())["images"]}
    from vision_synth import masks as mask_ops

    for im in (i for i in data["images"] if i.get("source") == "inpaint"):
        new = read_image(tmp_path / "out" / "images" / im["file_name"])
        before = read_image(dataset[1] / originals[im["pasted_on"]]["file_name"])
        labelled = np.zeros(new.shape[:2], bool)
        for a in (a for a in painted if a["image_id"] == im["id"]):
            labelled |= mask_ops.segmentation_to_mask(a["segmentation"], im["height"], im["width"])
        assert np.array_equal(new[~labelled], before[~labelled])  # no unlabelled change


def test_missing_inpaint_weights_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset = write_rare_dataset(tmp_path / "ds")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_policy(tmp_path / "no_such_model")))
    code = run(["augment-rare", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--out",
                str(tmp_path / "out"), "--config", str(tmp_path / "p.yaml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no_such_model" in err and "classes.crack.inpaint" in err
    assert not (tmp_path / "out").exists()
