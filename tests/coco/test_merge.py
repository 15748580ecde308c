import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers import check_coco_labels, synthetic_samples, write_coco_dataset
from vision_synth.coco.commands import add_dataset_parsers
from vision_synth.coco.merge import merge_datasets
from vision_synth.coco.reader import load_coco
from vision_synth.errors import VisionSynthError


def vision_synth(*argv) -> int:
    """The dataset commands as `vision-synth` runs them (cli.main adds only the error printing)."""
    parser = argparse.ArgumentParser(prog="vision-synth")
    add_dataset_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def counts_by_name(annotations) -> Counter:
    data = json.loads(annotations.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    return Counter(names[a["category_id"]] for a in data["annotations"])


@pytest.fixture
def two_datasets(tmp_path):
    """A: ids 1,2,3 = class1..3. B: the same names under other ids, plus a class A lacks."""
    a = write_coco_dataset(tmp_path / "a", synthetic_samples(n_images=5, seed=0))
    b_names = {4: "class3", 7: "scratch", 9: "class1"}
    b = write_coco_dataset(tmp_path / "b", synthetic_samples(n_images=4, categories=(9, 7, 4), seed=1),
                           category_names=b_names)
    return a, b


def test_merge_keeps_every_instance_matched_by_name(tmp_path, two_datasets):
    (a_ann, a_img), (b_ann, b_img) = two_datasets
    assert vision_synth("merge", a_ann.parent, b_ann.parent, "--out", tmp_path / "c") == 0
    merged = tmp_path / "c" / "annotations.json"
    data = check_coco_labels(merged)  # ids from 1 without gaps, bbox and area exact
    assert counts_by_name(merged) == counts_by_name(a_ann) + counts_by_name(b_ann)
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "class1"), (2, "class2"), (3, "class3"),
                                                                  (4, "scratch")]
    assert [im["id"] for im in data["images"]] == list(range(1, 10))
    assert len({im["file_name"] for im in data["images"]}) == 9
    dataset = load_coco(merged, tmp_path / "c" / "images")  # every file is there
    sources = {"a": load_coco(a_ann, a_img), "b": load_coco(b_ann, b_img)}
    for image in dataset.images:
        source = sources[Path(image["source_dataset"]).name]
        original = next(im for im in source.images if im["id"] == image["source_image_id"])
        assert image["source_file_name"] == original["file_name"]
        assert (tmp_path / "c" / "images" / image["file_name"]).read_bytes() == source.image_file(original).read_bytes()
        ours, theirs = dataset.instances(image), source.instances(original)
        assert np.array_equal(ours.masks, theirs.masks)
        names = [dataset.category_names[c] for c in ours.category_ids]
        assert names == [source.category_names[c] for c in theirs.category_ids]
        assert [a["source_annotation_id"] for a in dataset.annotations_of(image["id"])] == \
            theirs.attributes["annotation_id"].tolist()


def test_merge_is_deterministic_and_a_merge_of_merges_keeps_the_first_provenance(tmp_path, two_datasets):
    (a_ann, _), (b_ann, _) = two_datasets
    merge_datasets([a_ann.parent, b_ann.parent], tmp_path / "c1")
    merge_datasets([a_ann.parent, b_ann.parent], tmp_path / "c2", link="hard")
    first = (tmp_path / "c1" / "annotations.json").read_bytes()
    assert first == (tmp_path / "c2" / "annotations.json").read_bytes()
    assert (tmp_path / "c2" / "images" / "000000001.png").stat().st_ino == \
        (a_ann.parent / "images" / "000000001.png").stat().st_ino

    result = merge_datasets([tmp_path / "c1", b_ann.parent], tmp_path / "d", link="sym")
    assert result.images == 13 and sum(result.instances.values()) == sum(counts_by_name(a_ann).values()) + \
        2 * sum(counts_by_name(b_ann).values())
    data = json.loads((tmp_path / "d" / "annotations.json").read_text())
    c1 = json.loads(first)
    for im_c1, im_d in zip(c1["images"], data["images"]):
        assert [im_d[k] for k in ("source_dataset", "source_image_id", "source_file_name")] == \
            [im_c1[k] for k in ("source_dataset", "source_image_id", "source_file_name")]
    assert data["images"][-1]["source_dataset"] == str(b_ann.parent)
    assert [a["source_annotation_id"] for a in data["annotations"][: len(c1["annotations"])]] == \
        [a["source_annotation_id"] for a in c1["annotations"]]
    assert (tmp_path / "d" / "images" / "000000001.png").is_symlink()


def test_merge_refuses_names_it_cannot_match(tmp_path):
    ann, _ = write_coco_dataset(tmp_path / "a", synthetic_samples(n_images=2), category_names={1: "x", 2: "x", 3: "y"})
    other, _ = write_coco_dataset(tmp_path / "b", synthetic_samples(n_images=2))
    with pytest.raises(VisionSynthError, match="category name 'x' is used by two ids"):
        merge_datasets([other.parent, ann.parent], tmp_path / "c")
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))  # nothing half-written


@pytest.mark.parametrize("case, message", [
    ("one input", "at least two"),
    ("missing input", "no such dataset folder"),
    ("used output", "not empty"),
])
def test_bad_merge_input_is_a_one_line_error(tmp_path, two_datasets, case, message):
    (a_ann, _), (b_ann, _) = two_datasets
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    argv = {
        "one input": [a_ann.parent, "--out", tmp_path / "c"],
        "missing input": [a_ann.parent, tmp_path / "nope", "--out", tmp_path / "c"],
        "used output": [a_ann.parent, b_ann.parent, "--out", tmp_path / "used"],
    }[case]
    with pytest.raises(VisionSynthError, match=message) as err:
        vision_synth("merge", *argv)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))
