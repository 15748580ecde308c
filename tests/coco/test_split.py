import argparse
import json

import numpy as np
import pytest

from helpers import synthetic_samples, write_coco_dataset
from vision_synth.coco.commands import add_dataset_parsers
from vision_synth.coco.split import parse_ratios, split_dataset, split_file, stratified_assignment
from vision_synth.errors import VisionSynthError
from vision_synth.types import Provenance


def vision_synth(*argv) -> int:
    """The dataset commands as `vision-synth` runs them (cli.main adds only the error printing)."""
    parser = argparse.ArgumentParser(prog="vision-synth")
    add_dataset_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def split_ids(root):
    return {name: [im["id"] for im in json.loads(split_file(root, name).read_text())["images"]]
            for name in ("train", "val", "test") if split_file(root, name).exists()}


@pytest.mark.parametrize("text, expected", [
    ("0.8,0.1,0.1", (0.8, 0.1, 0.1)),
    ("0.7,0.3", (0.7, 0.3)),
    ("0.8,0.3", "sum to 1"),
    ("1", "give 2"),
    ("0.5,0.2,0.2,0.1", "give 2"),
    ("0.9,0.1,0", "greater than 0"),
    ("1.1,-0.1", "greater than 0"),
    ("0.8;0.2", "numbers separated by commas"),
    ("nan,0.5", "greater than 0"),
])
def test_ratios_are_validated(text, expected):
    if isinstance(expected, tuple):
        assert parse_ratios(text) == expected
    else:
        with pytest.raises(VisionSynthError, match=expected) as err:
            parse_ratios(text)
        assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_stratification_meets_the_ratios_of_every_class():
    rng = np.random.default_rng(0)
    counts = rng.poisson([3.0, 1.0, 0.3, 0.05], size=(400, 4))  # the last class is rare
    ratios = (0.7, 0.2, 0.1)
    assign = stratified_assignment(counts, ratios, np.random.default_rng(1))
    totals = counts.sum(axis=0)
    for s, r in enumerate(ratios):
        got = counts[assign == s].sum(axis=0)
        assert np.all(np.abs(got - r * totals) <= np.maximum(0.05 * totals, 1.5)), (s, got, r * totals)
        assert abs((assign == s).sum() - r * len(counts)) <= 0.05 * len(counts)


def test_split_covers_every_image_once_and_is_deterministic(tmp_path, coco_dataset):
    ann, _, samples = coco_dataset
    root = ann.parent
    split_dataset(root, "0.5,0.25,0.25", by_class=True, seed=7)
    first = {name: split_file(root, name).read_bytes() for name in ("train", "val", "test")}
    ids = split_ids(root)
    assert sorted(sum(ids.values(), [])) == [s.index + 1 for s in samples]
    for name in ("train", "val", "test"):
        data = json.loads(first[name])
        assert data["info"]["split"] == name
        assert {a["image_id"] for a in data["annotations"]} <= set(ids[name])
    full = json.loads(ann.read_text())
    kept = sum(len(json.loads(first[n])["annotations"]) for n in first)
    assert kept == len(full["annotations"])  # ids unchanged, nothing lost

    split_dataset(root, "0.5,0.25,0.25", by_class=True, seed=7, overwrite=True)
    assert all(split_file(root, n).read_bytes() == first[n] for n in first)
    outcomes = set()
    for seed in range(5):
        split_dataset(root, "0.5,0.25,0.25", seed=seed, overwrite=True)
        outcomes.add(json.dumps(split_ids(root)))
    assert len(outcomes) > 1  # the seed matters


def test_synthetic_images_stay_out_of_val_and_test(tmp_path):
    samples = synthetic_samples(n_images=16, size=(48, 48))
    samples = [s.replace(provenance=Provenance("procedural", synthetic=True)) if s.index % 2 else s for s in samples]
    ann, _ = write_coco_dataset(tmp_path / "mixed", samples)
    synthetic = {s.index + 1 for s in samples if s.provenance.synthetic}
    for by_class in (False, True):
        result = split_dataset(ann.parent, "0.5,0.25,0.25", by_class=by_class, seed=1, overwrite=True)
        ids = split_ids(ann.parent)
        assert synthetic <= set(ids["train"])
        assert not synthetic & set(ids["val"] + ids["test"])
        assert result.synthetic_in_train == len(synthetic)
        assert (len(ids["val"]), len(ids["test"])) == (2, 2)  # the ratios apply to the 8 real images
    evaluated = set()
    for seed in range(4):
        result = split_dataset(ann.parent, "0.5,0.25,0.25", seed=seed, allow_synthetic_eval=True, overwrite=True)
        assert result.synthetic_in_train == 0
        ids = split_ids(ann.parent)
        evaluated |= set(ids["val"] + ids["test"])
    assert evaluated & synthetic  # asked for: synthetic images may now be evaluated on


def test_all_synthetic_dataset_needs_the_flag(tmp_path):
    samples = [s.replace(provenance=Provenance("procedural")) for s in synthetic_samples(n_images=6, size=(48, 48))]
    ann, _ = write_coco_dataset(tmp_path / "syn", samples)
    with pytest.raises(VisionSynthError, match="--allow-synthetic-eval"):
        vision_synth("split", ann.parent)
    assert vision_synth("split", ann.parent, "--ratios", "0.5,0.5", "--allow-synthetic-eval") == 0
    assert set(split_ids(ann.parent)) == {"train", "val"}


def test_a_two_way_split_removes_the_old_test_file(coco_dataset):
    root = coco_dataset[0].parent
    vision_synth("split", root, "--ratios", "0.5,0.25,0.25")
    assert split_file(root, "test").exists()
    vision_synth("split", root, "--ratios", "0.5,0.5", "--by-class", "--overwrite")
    assert not split_file(root, "test").exists()


@pytest.mark.parametrize("n_images, ratios, message", [
    (6, "0.8,0.3", "sum to 1"),
    (2, "0.8,0.1,0.1", "2 real \\(non-synthetic\\) images cannot fill 3 splits"),
])
def test_bad_split_input_is_a_one_line_error(tmp_path, n_images, ratios, message):
    ann, _ = write_coco_dataset(tmp_path / "ds", synthetic_samples(n_images=n_images, size=(48, 48)))
    with pytest.raises(VisionSynthError, match=message) as err:
        vision_synth("split", ann.parent, "--ratios", ratios)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_missing_dataset_is_a_one_line_error(tmp_path):
    with pytest.raises(VisionSynthError, match="no such dataset folder") as err:
        vision_synth("split", tmp_path / "nope")
    assert err.value.exit_code == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(VisionSynthError, match="annotations.json: file not found"):
        vision_synth("split", tmp_path / "empty")
