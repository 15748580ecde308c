import json

import numpy as np
import pytest
import yaml

from helpers import check_coco_labels
from rare_helpers import run, write_rare_dataset
from vision_synth.rare.dataset import augment_rare
from vision_synth.rare.learned import (TrainSpec, load_model, memorisation_filter, sample_crops, sample_cutouts,
                                       train, training_crops)
from vision_synth.rare.policy import load_policy

TINY = dict(size=16, batch_size=2, checkpoint_every=2, channels=(8, 16))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned")
    dataset = write_rare_dataset(root / "ds", rare_on=(1, 3, 5, 7, 9))
    model = root / "model"
    first = train(*dataset, TrainSpec("crack", steps=2, **TINY), model, eval_ratio=0.25, show_progress=False)
    resumed = train(*dataset, TrainSpec("crack", steps=4, **TINY), model, eval_ratio=0.25, show_progress=False)
    return dataset, model, first, resumed


def test_trains_checkpoints_and_resumes(trained):
    _, model, first, resumed = trained
    assert first.resumed_from == 0 and first.steps == 2
    assert resumed.resumed_from == 2 and resumed.steps == 4
    checkpoints = sorted(p.name for p in model.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-000002", "checkpoint-000004"]
    assert list((model / "checkpoint-000004" / "unet").glob("*.safetensors"))
    assert list((model / "unet").glob("*.safetensors"))


def test_resume_takes_the_same_steps_as_one_run(trained, tmp_path):
    dataset, model, _, _ = trained
    train(*dataset, TrainSpec("crack", steps=4, **TINY), tmp_path / "straight", eval_ratio=0.25, show_progress=False)
    a = load_model(model).unet.state_dict()
    b = load_model(tmp_path / "straight").unet.state_dict()
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-4, atol=1e-6)


def test_eval_split_is_left_out_of_training(trained):
    dataset, model, _, _ = trained
    meta = json.loads((model / "rare_model.json").read_text())
    held_out = set(meta["eval_held_out"])
    data = json.loads(dataset[0].read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    assert held_out and not ({files[i] for i in held_out} & set(meta["training_images"]))


def test_samples_crops_with_masks(trained):
    _, model, _, _ = trained
    m = load_model(model)
    crops = sample_crops(m, 3, seed=1, steps=2)
    assert crops.shape == (3, 16, 16, 4) and crops.dtype == np.uint8
    assert set(np.unique(crops[..., 3])) <= {0, 255}
    assert np.array_equal(crops, sample_crops(m, 3, seed=1, steps=2))  # deterministic
    drawn = sample_cutouts(m, 3, seed=1, steps=2)
    assert len(drawn.cutouts) + drawn.rejected >= 1
    assert all(c.alpha.any() for c in drawn.cutouts)
    assert drawn.report["samples"] == len(drawn.cutouts) and "dcr" in drawn.report


def test_dcr_rejects_a_planted_training_crop(trained):
    dataset, model, _, _ = trained
    m = load_model(model)
    rng = np.random.default_rng(0)
    generated = rng.integers(0, 256, (4, 16, 16, 4)).astype(np.uint8)
    planted = np.concatenate([generated, m.training_crops[1:2]])
    keep, result = memorisation_filter(planted, m.training_crops)
    assert not keep[-1] and keep[:-1].all()
    assert result.distances[-1] < 1e-5  # the copy itself (float rounding aside)


def test_learned_source_in_augment_rare(trained, tmp_path, capsys):
    dataset, model, _, _ = trained
    policy = {"target_per_class": 10, "eval": {"ratio": 0.25}, "max_synthetic_fraction": 0.5,
              "classes": {"crack": {"source": "learned", "model": str(model), "sample_steps": 2},
                          "scratch": {"target": 0}, "stain": {"target": 0}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    summary = augment_rare(*dataset, load_policy(tmp_path / "p.yaml"), tmp_path / "out", show_progress=False)
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    learned = [a for a in data["annotations"] if a.get("source") == "learned"]
    assert len(learned) == summary.added[3] > 0
    # the report carries the learned crops' fidelity, diversity and DCR figures beside the counts
    quality = json.loads((tmp_path / "out" / "rare_report.json").read_text())["learned_crops"]["crack"]
    assert 0 <= quality["precision"] <= 1 and 0 <= quality["recall"] <= 1 and quality["diversity_ratio"] >= 0
    assert quality["samples"] > 0 and "close_fraction" in quality["dcr"]
    # an eval split holding an image the model was trained on: refused, nothing written
    meta = json.loads((model / "rare_model.json").read_text())
    original = json.loads(dataset[0].read_text())
    leaked = [im for im in original["images"] if im["file_name"] == meta["training_images"][0]]
    (tmp_path / "eval.json").write_text(json.dumps({**original, "images": leaked, "annotations": [
        a for a in original["annotations"] if a["image_id"] == leaked[0]["id"]]}))
    policy["eval"] = {"coco": str(tmp_path / "eval.json")}
    (tmp_path / "p2.yaml").write_text(yaml.safe_dump(policy))
    code = run(["augment-rare", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--out",
                str(tmp_path / "out2"), "--config", str(tmp_path / "p2.yaml"), "--quiet"])
    assert code == 2 and "trained on 1 image(s) of the eval split" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_cli_train_and_sample(trained, tmp_path, capsys):
    dataset, model, _, _ = trained
    assert run(["defects", "sample", "--model", str(model), "--num", "3", "--out", str(tmp_path / "s"),
                "--steps", "2"]) == 0
    report = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert len(report["written"]) + len(report["rejected_dcr"]) + len(report["empty_mask"]) == 3
    assert run(["defects", "sample", "--model", str(tmp_path), "--num", "1", "--out", str(tmp_path / "x")]) == 2
    assert run(["defects", "train", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--category", "dent",
                "--out", str(tmp_path / "m")]) == 2
    assert "no category named 'dent'" in capsys.readouterr().err


def test_training_crops_hold_the_mask(trained):
    dataset, _, _, _ = trained
    crops, origin = training_crops(*dataset, "crack", 16)
    assert crops.shape[1:] == (16, 16, 4) and (crops[..., 3].reshape(len(crops), -1).max(axis=1) == 255).all()
    assert origin["category"] == "crack"


def test_sampled_masks_are_made_as_clean_as_drawn_ones():
    from vision_synth.rare.learned import smooth_mask

    mask = np.zeros((32, 32), bool)
    yy, xx = np.mgrid[0:32, 0:32]
    mask[(yy - 16) ** 2 + (xx - 15) ** 2 <= 49] = True  # the instance, centred
    mask[15:17, 14:16] = False  # a hole in it
    mask[2, 2] = mask[29, 5] = True  # speckles
    mask[24:30, 24:30] = True  # a second blob away from the centre
    clean = smooth_mask(mask)
    import cv2

    count, _ = cv2.connectedComponents(clean.astype(np.uint8))
    assert count == 2  # background + one part
    assert clean[16, 15] and clean[15, 14]  # hole filled, centre kept
    assert not clean[2, 2] and not clean[27, 27]


def test_greyscale_training_crops_give_greyscale_samples(tmp_path):
    from pathlib import Path

    nuclei = Path(__file__).resolve().parents[1] / "assets" / "nuclei_dev" / "train_few"
    train(nuclei / "annotations.json", nuclei / "images", TrainSpec("nucleus", steps=2, **TINY), tmp_path / "m",
          show_progress=False)
    m = load_model(tmp_path / "m")
    assert m.meta["grey"] is True
    crops = sample_crops(m, 4, seed=0, steps=2)
    assert (crops[..., 0] == crops[..., 1]).all() and (crops[..., 1] == crops[..., 2]).all()


def test_crop_quality_tells_copies_from_varied_crops(trained):
    from vision_synth.rare.learned import crop_quality

    _, model, _, _ = trained
    real = load_model(model).training_crops
    same = crop_quality(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["diversity_ratio"] == pytest.approx(1.0)
    one = crop_quality(np.repeat(real[:1], len(real), axis=0), real)
    assert one["diversity_ratio"] == 0.0 and one["recall"] < 0.5
    assert same["learned"]["mask_solidity"] == pytest.approx(same["real"]["mask_solidity"])


def test_one_image_with_eval_ratio_names_defects_train_options(tmp_path, capsys):
    from pathlib import Path

    nuclei = Path(__file__).resolve().parents[1] / "assets" / "nuclei_dev" / "train_few"
    code = run(["defects", "train", "--coco", str(nuclei / "annotations.json"), "--images", str(nuclei / "images"),
                "--category", "nucleus", "--out", str(tmp_path / "m"), "--eval-ratio", "0.2", "--steps", "1",
                "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--eval-coco FILE.json" in err and "--eval-ratio" in err and "allow-synthetic-eval" not in err
