"""`vision-synth augment` on existing COCO datasets: outputs written like the generator's, every
kind of input segmentation accepted, malformed input refused with one line and nothing written."""

import json

import pytest
import yaml

from helpers import check_coco_labels, coco_self_eval, synthetic_samples, write_coco_dataset
from vision_synth import masks as mask_ops
from vision_synth.cli import main

GEOMETRIC = {"__version__": "2.0.8", "transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [
    {"__class_fullname__": "HorizontalFlip", "p": 0.5},
    {"__class_fullname__": "Affine", "p": 1.0, "rotate": [-25, 25], "scale": [0.8, 1.2]},
    {"__class_fullname__": "RandomBrightnessContrast", "p": 0.5}]}}


def run_cli(argv: list[str]) -> int:
    """`vision-synth augment ...` through the real entry point."""
    return main(argv)


@pytest.fixture
def pipeline_file(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text(yaml.safe_dump(GEOMETRIC))
    return path


def augment(coco, images, pipeline_file, out, *extra):
    return run_cli(["augment", "--coco", str(coco), "--images", str(images), "--pipeline", str(pipeline_file),
                    "--out", str(out), "--quiet", "--format", "png", "--min-area", "1", *extra])


def test_augment_writes_a_dataset_like_the_generator(coco_dataset, pipeline_file, tmp_path, capsys):
    ann, images, samples = coco_dataset
    out = tmp_path / "out"
    assert augment(ann, images, pipeline_file, out, "--copies", "2", "--keep-originals", "--seed", "5") == 0
    data = check_coco_labels(out / "annotations.json")
    assert coco_self_eval(out / "annotations.json", "bbox") == 1.0
    assert coco_self_eval(out / "annotations.json", "segm") == 1.0
    ids = [im["id"] for im in data["images"]]
    assert ids == list(range(1, 3 * len(samples) + 1))
    assert sorted(p.name for p in (out / "images").iterdir()) == [im["file_name"] for im in data["images"]]
    assert [im["file_name"] for im in data["images"]][:2] == ["000000001.png", "000000002.png"]
    originals = data["images"][::3]
    copies = [im for im in data["images"] if im not in originals]
    assert all(not im["synthetic"] and "stages" not in im for im in originals)
    assert all(im["synthetic"] and im["stages"] == ["augment"] for im in copies)
    assert [im["copy"] for im in copies[:2]] == [0, 1] and copies[0]["source_image_id"] == 1
    first = [a for a in data["annotations"] if a["image_id"] == 1]
    assert len(first) == len(samples[0].instances)  # the original, as it was
    assert sorted(data) == ["annotations", "categories", "images", "info", "licenses"]
    assert not list(tmp_path.glob(".out.partial-*"))
    assert "wrote 18 images from 6" in capsys.readouterr().out


def test_same_seed_same_bytes_other_seed_other_images(coco_dataset, pipeline_file, tmp_path):
    ann, images, _ = coco_dataset
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert augment(ann, images, pipeline_file, tmp_path / name, "--seed", seed) == 0
    read = lambda name: (tmp_path / name / "annotations.json").read_bytes()
    assert read("a") == read("b")
    assert read("a") != read("c")
    for p in (tmp_path / "a" / "images").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / "images" / p.name).read_bytes()


@pytest.mark.parametrize("form", ["polygon", "uncompressed"])
def test_polygon_and_uncompressed_rle_inputs_are_accepted(form, pipeline_file, tmp_path):
    samples = synthetic_samples(n_images=3)
    ann, images = write_coco_dataset(tmp_path / "in", samples, segmentation="polygon" if form == "polygon" else "rle")
    if form == "uncompressed":
        data = json.loads(ann.read_text())
        for a in data["annotations"]:
            a["segmentation"] = mask_ops.uncompress_rle(mask_ops.decode_rle(a["segmentation"]))
        ann.write_text(json.dumps(data))
    assert augment(ann, images, pipeline_file, tmp_path / "out", "--copies", "2") == 0
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    assert len(data["images"]) == 6 and len(data["annotations"]) > 0
    assert coco_self_eval(tmp_path / "out" / "annotations.json", "segm") == 1.0


def test_box_only_input_is_flagged_approximate(coco_dataset, pipeline_file, tmp_path):
    ann, images, _ = coco_dataset
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        del a["segmentation"]
    boxes_only = tmp_path / "boxes.json"
    boxes_only.write_text(json.dumps(data))
    assert augment(boxes_only, images, pipeline_file, tmp_path / "out") == 0
    out = check_coco_labels(tmp_path / "out" / "annotations.json")
    assert out["annotations"] and all(a["approximate"] is True for a in out["annotations"])
    assert coco_self_eval(tmp_path / "out" / "annotations.json", "bbox") == 1.0


def test_crowd_regions_are_left_out(coco_dataset, pipeline_file, tmp_path, capsys):
    ann, images, samples = coco_dataset
    data = json.loads(ann.read_text())
    data["annotations"][0]["iscrowd"] = 1
    ann.write_text(json.dumps(data))
    assert augment(ann, images, pipeline_file, tmp_path / "out", "--keep-originals") == 0
    out = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len([a for a in out["annotations"] if a["image_id"] == 1]) == len(samples[0].instances) - 1
    assert "left out 1 iscrowd annotations" in capsys.readouterr().out


def test_copy_paste_from_the_command_line(coco_dataset, pipeline_file, tmp_path):
    ann, images, _ = coco_dataset
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"copies": 2, "copy_paste": {"count": [2, 2], "min_visible_area": 1}}))
    assert run_cli(["augment", "--coco", str(ann), "--images", str(images), "--spec", str(spec),
                    "--out", str(tmp_path / "out"), "--quiet", "--format", "png", "--min-area", "1"]) == 0
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    assert coco_self_eval(tmp_path / "out" / "annotations.json", "segm") == 1.0
    assert any(a["source"] == "copy-paste" for a in data["annotations"])
    assert all(im["stages"] == ["copy-paste"] for im in data["images"])


def test_malformed_coco_exits_2_naming_the_record_and_writes_nothing(coco_dataset, pipeline_file, tmp_path, capsys):
    ann, images, _ = coco_dataset
    data = json.loads(ann.read_text())
    data["annotations"][3]["category_id"] = 99
    ann.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert augment(ann, images, pipeline_file, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "annotations[3] (id 4)" in err and "category_id 99" in err and str(ann) in err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.parametrize("problem, expected", [
    ("unknown transform", "transform.transforms[0]: unknown albumentations 2.0.8 transform 'Flipp'"),
    ("bad flag", "copies"),
    ("unreadable image", "cannot read image"),
    ("out not empty", "already exists and is not empty"),
])
def test_bad_input_exits_2_with_one_line(problem, expected, coco_dataset, pipeline_file, tmp_path, capsys):
    ann, images, _ = coco_dataset
    out = tmp_path / "out"
    extra = []
    if problem == "unknown transform":
        pipeline_file.write_text(yaml.safe_dump({"transform": {"__class_fullname__": "Compose", "p": 1.0,
                                                               "transforms": [{"__class_fullname__": "Flipp"}]}}))
    elif problem == "bad flag":
        extra = ["--copies", "0"]
    elif problem == "unreadable image":
        next(images.iterdir()).write_bytes(b"not a png")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    assert augment(ann, images, pipeline_file, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    if problem == "out not empty":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_drop_empty_and_overwrite(coco_dataset, tmp_path):
    ann, images, samples = coco_dataset
    away = tmp_path / "away.yaml"
    away.write_text(yaml.safe_dump({"transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [
        {"__class_fullname__": "Affine", "p": 1.0, "translate_px": {"x": [500, 500], "y": [0, 0]}}]}}))
    out = tmp_path / "out"
    assert augment(ann, images, away, out, "--keep-originals") == 0
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 2 * len(samples)
    assert augment(ann, images, away, out, "--keep-originals", "--drop-empty") == 2  # not empty now
    assert augment(ann, images, away, out, "--keep-originals", "--drop-empty", "--overwrite") == 0
    data = json.loads((out / "annotations.json").read_text())
    assert [im["id"] for im in data["images"]] == [2 * i + 1 for i in range(len(samples))]
    assert len(list((out / "images").iterdir())) == len(samples)
