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


def _inpaint(model, name: str, min_agreement: float) -> dict:
    return {"mode": "inpaint-insert", "model": str(model), "steps": 2, "device": "cpu", "safety_checker": False,
            "prompts": {name: {"prompt": f"a {name} on a metal surface"}}, "check": {"min_agreement": min_agreement}}


def _policy(model, min_agreement: float = 0.0, scratch: bool = False) -> dict:
    # the tiny model draws noise, which the check rightly rejects: min_agreement 0 keeps it, to
    # test the mechanics; the fake pipelines below test the verdicts
    return {"target_per_class": 6, "eval": {"ratio": 0.25}, "max_synthetic_fraction": 0.75,
            "classes": {"crack": {"source": "inpaint", "inpaint": _inpaint(model, "crack", min_agreement)},
                        "scratch": ({"source": "inpaint", "inpaint": _inpaint(model, "scratch", min_agreement)}
                                    if scratch else {"target": 0}),
                        "stain": {"target": 0}}}


@pytest.fixture
def fresh_pipelines(monkeypatch):
    """No pipeline left loaded by an earlier test."""
    import vision_synth.rare.inpaint as inpaint

    monkeypatch.setattr(inpaint, "_PIPELINES", {})


def test_inpaint_source_keeps_pixels_outside_its_labels(tmp_path, tiny_inpaint, monkeypatch, fresh_pipelines):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # 70 px: no multiple of 8; crops are resized to the model's size, so any image size works
    dataset = write_rare_dataset(tmp_path / "ds", size=70)
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


def fake_loaded(pipe):
    import torch

    from vision_synth.diffusion.loading import LoadedPipeline

    return LoadedPipeline(pipe, torch.device("cpu"), torch.float32, "fake", "0" * 16, "sdpa")


@pytest.mark.parametrize("draw, kept", [("retexture_everywhere", False), ("insert_distinct_object", True)])
def test_inpaint_source_verdicts(tmp_path, monkeypatch, fresh_pipelines, draw, kept):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diffusion"))
    import diffusion_helpers

    import vision_synth.rare.inpaint as inpaint

    pipe = diffusion_helpers.FakeInpaintPipeline(getattr(diffusion_helpers, draw))
    monkeypatch.setattr(inpaint, "shared_pipeline", lambda spec: fake_loaded(pipe))
    dataset = write_rare_dataset(tmp_path / "ds")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_policy("fake-model", min_agreement=0.5)))
    summary = augment_rare(*dataset, load_policy(tmp_path / "p.yaml"), tmp_path / "out", show_progress=False)
    assert pipe.calls  # the fake did paint
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    painted = [a for a in data["annotations"] if a.get("source") == "inpaint"]
    assert len(painted) == summary.added[3]
    assert (len(painted) > 0) == kept


def test_classes_of_one_model_share_one_pipeline(tmp_path, monkeypatch, fresh_pipelines):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diffusion"))
    import diffusion_helpers

    import vision_synth.diffusion.loading as loading
    import vision_synth.rare.inpaint as inpaint

    loads, built = [], []
    pipe = diffusion_helpers.FakeInpaintPipeline(diffusion_helpers.insert_distinct_object)
    monkeypatch.setattr(loading, "load_pipeline", lambda spec: loads.append(spec.model) or fake_loaded(pipe))
    init = inpaint.Inpainter.__init__
    monkeypatch.setattr(inpaint.Inpainter, "__init__", lambda self, spec, name, *a: built.append(name) or
                        init(self, spec, name, *a))
    dataset = write_rare_dataset(tmp_path / "ds")
    policy = _policy("one-model", min_agreement=0.5, scratch=True)
    policy["classes"]["scratch"]["target"] = 11  # a few more than the training part has: scratch is planned too
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    summary = augment_rare(*dataset, load_policy(tmp_path / "p.yaml"), tmp_path / "out", show_progress=False)
    assert sorted(built) == ["crack", "scratch"]  # two classes inpainted
    assert summary.added[1] > 0 and summary.added[3] > 0
    assert loads == ["one-model"]  # with one model, loaded once
