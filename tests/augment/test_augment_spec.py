"""The `augment:` config section: validation errors that name the file and key, pipeline paths."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from vision_synth.augment import AugmentSpec, load_augment_spec
from vision_synth.augment.albu import load_pipeline
from vision_synth.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FLIP = {"__class_fullname__": "HorizontalFlip", "p": 0.5}


def write(tmp_path, data, name="aug.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data, expected", [
    ({"pipeline": {"transform": {"__class_fullname__": "Compose", "p": 1.0,
                                 "transforms": [{"__class_fullname__": "Rotat", "p": 1.0}]}}},
     "pipeline: transform.transforms[0]: unknown albumentations 2.0.8 transform 'Rotat'"),
    ({"pipeline": FLIP, "copies": 0}, "copies: input should be greater than or equal to 1"),
    ({"pipeline": FLIP, "colour": 1}, "colour: unknown key"),
    ({"copies": 2}, "augment needs a pipeline, copy_paste, or both"),
    ({"copy_paste": {"class_weights": {1: -1}}}, "copy_paste.class_weights: weights must be >= 0"),
    ({"copy_paste": {"scale": [2, 1]}}, "copy_paste.scale: expected [min, max] with 0 < min <= max"),
])
def test_spec_errors_name_file_and_key(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_augment_spec(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_inline_pipeline_is_checked_when_the_spec_is_validated():
    with pytest.raises(ValidationError, match="unknown albumentations"):
        AugmentSpec(pipeline={"__class_fullname__": "NoSuchThing"})


def test_pipeline_path_is_relative_to_the_spec_file(tmp_path):
    (tmp_path / "pipes").mkdir()
    write(tmp_path / "pipes", {"__class_fullname__": "Compose", "p": 1.0, "transforms": [FLIP]}, "flip.yaml")
    spec = load_augment_spec(write(tmp_path, {"pipeline": "pipes/flip.yaml"}))
    assert spec.load_pipeline().source == str(tmp_path / "pipes" / "flip.yaml")
    missing = load_augment_spec(write(tmp_path, {"pipeline": "pipes/none.yaml"}, "other.yaml"))
    with pytest.raises(ConfigError, match="none.yaml: pipeline file not found"):
        missing.load_pipeline()


def test_flags_override_the_file_and_defaults_fill_it(tmp_path):
    path = write(tmp_path, {"pipeline": FLIP, "copies": 3})
    spec = load_augment_spec(path, {"keep_originals": False}, copies=5, min_area=None)
    assert (spec.copies, spec.keep_originals, spec.min_area) == (5, False, 16)


def test_shipped_example_and_pipelines_load():
    config = yaml.safe_load((CONFIGS / "augment_example.yaml").read_text())
    spec = AugmentSpec.model_validate(config["augment"])
    assert spec.load_pipeline(CONFIGS).geometric and spec.slots == 3
    for path in sorted((CONFIGS / "pipelines").glob("*.yaml")):
        assert load_pipeline(str(path)).geometric, path
