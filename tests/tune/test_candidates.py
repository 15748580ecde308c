"""Candidates of each kind of base: the settings land in the base as if written there, the candidate
is made by the base's own command, and best.yaml (paths made absolute) loads back to the very same
candidate key from anywhere."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from helpers import REPO, write_coco_dataset
from tune_helpers import DISC, disc_samples, write_setup
from vision_synth.tune.candidates import AugmentBase, GenerateBase, RareBase, ensure_candidate


def _reloaded(base, edits, tmp_path, cls, *args):
    """best.yaml of `edits`, written in another folder and loaded from another working directory."""
    best = tmp_path / "elsewhere" / "best.yaml"
    best.parent.mkdir(parents=True, exist_ok=True)
    best.write_text(yaml.safe_dump(base.written(edits), sort_keys=False))
    cwd = os.getcwd()
    os.chdir(tmp_path / "elsewhere")
    try:
        again = cls(best, *args)
        return again.load({})
    finally:
        os.chdir(cwd)


def test_augment_settings_make_the_candidate_and_best_yaml_reproduces_it(tmp_path):
    setup = write_setup(tmp_path / "data")
    base = AugmentBase(setup["base"], seed=0, fmt="png")
    edits = {"copy_paste.count": [2, 3], "copies": 3}
    loaded = base.load(edits)
    assert loaded.copies == 3 and loaded.copy_paste.count == (2, 3) and loaded.keep_originals is False
    key = base.key(loaded, "src")
    assert key != base.key(base.load({}), "src") and key != base.key(loaded, "other source")
    assert base.key(_reloaded(base, edits, tmp_path, AugmentBase, 0, "png"), "src") == key
    assert os.path.isabs(base.written(edits)["pipeline"])

    source = (setup["train"], setup["train_images"])
    candidate = ensure_candidate(base, loaded, source, key, tmp_path / "candidates")
    data = json.loads(candidate.annotations.read_text())
    assert len(data["images"]) == 3 * 3  # 3 copies of each of 3 real images, no originals
    assert data["info"]["vision_synth"]["augment"]["copy_paste"]["count"] == [2, 3]
    stamp = candidate.annotations.stat().st_mtime_ns
    assert ensure_candidate(base, loaded, source, key, tmp_path / "candidates") == candidate
    assert candidate.annotations.stat().st_mtime_ns == stamp, "a made candidate is reused"


def test_generate_settings_go_into_the_config_and_its_named_scene(tmp_path):
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    config = project / "configs" / "tiny.yaml"
    config.write_text(yaml.safe_dump({"name": "tiny", "seed": 3, "num_images": 8,
                                      "image": {"width": 48, "height": 48, "format": "png"},
                                      "scene": "surface_defects",
                                      "quality": {"reference": "real.json"}}))  # a gate tune leaves aside
    base = GenerateBase(config)
    edits = {"num_images": 3, "scene.blending.mode": "hard", "scene.placement.max_overlap": 0.1}
    loaded = base.load(edits)
    assert loaded.num_images == 3 and loaded.scene.blending.mode == "hard" and loaded.quality is None
    assert loaded.scene.placement.max_overlap == 0.1
    key = base.key(loaded, "")
    assert key != base.key(base.load({}), "")
    written = base.written(edits)
    assert written["scene"]["blending"]["mode"] == "hard" and written["quality"]["reference"].startswith("/")
    assert base.key(_reloaded(base, edits, tmp_path, GenerateBase), "") == key
    assert base.written({"num_images": 3})["scene"] == str(REPO / "scenes" / "surface_defects" / "scene.yaml")

    candidate = ensure_candidate(base, loaded, None, key, tmp_path / "candidates")
    data = json.loads(candidate.annotations.read_text())
    assert len(data["images"]) == 3 and (candidate.images / data["images"][0]["file_name"]).is_file()


def test_a_rare_candidate_is_the_new_images_only(tmp_path):
    root = tmp_path / "data"
    train = write_coco_dataset(root / "train", disc_samples(4, seed=1), category_names=DISC)
    policy = root / "policy.yaml"
    policy.write_text(yaml.safe_dump({"seed": 0, "target_per_class": 20, "max_synthetic_fraction": 0.9,
                                      "eval": {"ratio": 0.25}}))
    base = RareBase(policy)
    edits = {"per_image": [2, 2], "paste.scale": [0.1, 0.2]}
    loaded = base.load(edits)
    assert loaded.per_image == (2, 2) and loaded.paste.scale == (0.1, 0.2)
    key = base.key(loaded, "src")
    assert base.key(_reloaded(base, edits, tmp_path, RareBase), "src") == key

    candidate = ensure_candidate(base, loaded, train, key, tmp_path / "candidates")
    data = json.loads(candidate.annotations.read_text())
    real = json.loads(train[0].read_text())
    assert data["images"] and all(im["synthetic"] for im in data["images"])
    assert not {im["file_name"] for im in data["images"]} & {im["file_name"] for im in real["images"]}
    assert {a["image_id"] for a in data["annotations"]} == {im["id"] for im in data["images"]}
    assert all((candidate.images / im["file_name"]).is_file() for im in data["images"])


def test_an_edit_the_base_refuses_names_the_base_file_and_key(tmp_path):
    from vision_synth.errors import ConfigError

    setup = write_setup(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"base\.yaml: copy_paste\.scale: expected \[min, max\] with 0 < min"):
        AugmentBase(setup["base"], 0, "png").load({"copy_paste.scale": -1})
