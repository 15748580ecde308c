"""vision_synth.coco.reader: a valid file loads; every bad record is one DatasetError line that names
the file and the record (table-driven: each case mutates one record of a valid dataset); image paths
stay inside the image folder."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vision_synth import masks as mask_ops
from vision_synth.coco.reader import load_coco, outside_file_name
from vision_synth.errors import DatasetError

H, W = 20, 30


def valid() -> dict:
    mask = np.zeros((H, W), bool)
    mask[4:10, 5:15] = True
    return {
        "info": {"description": "t"},
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "images": [{"id": 1, "file_name": "one.png", "width": W, "height": H},
                   {"id": 2, "file_name": "two.png", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 4, 10, 6], "area": 60, "iscrowd": 0,
             "segmentation": mask_ops.encode_rle(mask[None])[0]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [10, 10, 5, 5], "area": 25, "iscrowd": 0},
        ],
    }


def write(tmp_path, data: dict | str | bytes) -> str:
    """The dataset (or raw file content) as tmp_path/annotations.json, beside two empty image files
    (the reader checks that they exist, not what they hold)."""
    for name in ("one.png", "two.png"):
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "annotations.json"
    if isinstance(data, dict):
        data = json.dumps(data)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def test_a_valid_file_loads_with_every_record(tmp_path):
    dataset = load_coco(write(tmp_path, valid()))
    assert [im["id"] for im in dataset.images] == [1, 2]
    assert [a["id"] for a in dataset.annotations_of(2)] == [2, 3]
    inst = dataset.instances(dataset.images[1])
    assert inst.attributes["approximate"].tolist() == [False, True]  # the box-only annotation
    assert inst.boxes[1].tolist() == [10, 10, 5, 5]


def _set(*path_and_value):
    *keys, value = path_and_value

    def mutate(data):
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return mutate


DELETE = object()

# (case id, mutation of the valid dataset, expected message after "annotations.json: ")
CASES = [
    ("no-keys", lambda d: d.clear() or d.update({"x": 1}), "'images' is missing or not a list"),
    ("no-annotations", _set("annotations", DELETE), "'annotations' is missing or not a list"),
    ("categories-not-list", _set("categories", {"id": 1}), "'categories' is missing or not a list"),
    ("category-no-name", _set("categories", 1, "name", DELETE),
     r"categories\[1\]: needs an integer 'id' \(0 to 2\^63-1\) and a string 'name'"),
    ("category-str-id", _set("categories", 0, "id", "1"), r"categories\[0\]: needs an integer 'id'"),
    ("category-duplicate", _set("categories", 1, "id", 1), r"categories\[1\]: duplicate category id 1"),
    ("image-not-object", _set("images", 0, "one.png"), r"images\[0\]: not an object"),
    ("image-no-id", _set("images", 1, "id", DELETE), r"images\[1\]: 'id' is missing or not an integer"),
    ("image-bool-width", _set("images", 0, "width", True), r"images\[0\]: 'width' is missing or not an integer"),
    ("image-float-height", _set("images", 0, "height", 20.0), r"images\[0\]: 'height' is missing or not an integer"),
    ("image-no-file-name", _set("images", 0, "file_name", 7), r"images\[0\]: 'file_name' is missing or not a string"),
    ("image-zero-width", _set("images", 1, "width", 0), r"images\[1\] \(id 2\): width and height must be positive"),
    ("image-duplicate-id", _set("images", 1, "id", 1), r"images\[1\] \(id 1\): duplicate image id"),
    ("image-file-missing", _set("images", 1, "file_name", "three.png"), r"images\[1\] \(id 2\): image file .*three.png not found"),
    ("ann-no-id", _set("annotations", 0, "id", DELETE), r"annotations\[0\]: needs an integer 'id'"),
    ("ann-not-object", _set("annotations", 2, [1, 2]), r"annotations\[2\]: needs an integer 'id'"),
    ("ann-duplicate-id", _set("annotations", 2, "id", 1), r"annotations\[2\] \(id 1\): duplicate annotation id"),
    ("ann-unknown-image", _set("annotations", 1, "image_id", 9), r"annotations\[1\] \(id 2\): image_id 9 is not in images"),
    ("ann-unknown-category", _set("annotations", 1, "category_id", 5), r"annotations\[1\] \(id 2\): category_id 5 is not in categories"),
    ("bbox-three-numbers", _set("annotations", 2, "bbox", [1, 2, 3]), r"annotations\[2\] \(id 3\): bbox must be \[x, y, width, height\]"),
    ("bbox-strings", _set("annotations", 2, "bbox", ["1", 2, 3, 4]), r"annotations\[2\] \(id 3\): bbox must be"),
    ("bbox-no-area", _set("annotations", 2, "bbox", [1, 2, 0, 4]), r"annotations\[2\] \(id 3\): bbox \[1, 2, 0, 4\] has no area"),
    ("bbox-outside", _set("annotations", 2, "bbox", [25, 10, 7, 5]), r"annotations\[2\] \(id 3\): bbox \[25, 10, 7, 5\] lies outside the 30×20 image"),
    ("bbox-negative", _set("annotations", 2, "bbox", [-2, 0, 3, 3]), r"annotations\[2\] \(id 3\): bbox .* lies outside"),
    ("no-shape", _set("annotations", 2, "bbox", DELETE), r"annotations\[2\] \(id 3\): has neither segmentation nor bbox"),
    ("polygon-two-points", _set("annotations", 1, "segmentation", [[1, 1, 5, 1]]),
     r"annotations\[1\] \(id 2\): segmentation\[0\] is not a polygon of at least 3 points"),
    ("polygon-odd-length", _set("annotations", 1, "segmentation", [[1, 1, 5, 1, 5, 5, 1]]), r"segmentation\[0\] is not a polygon"),
    ("polygon-not-list", _set("annotations", 1, "segmentation", [7]), r"segmentation\[0\] is not a polygon"),
    ("rle-no-counts", _set("annotations", 0, "segmentation", {"size": [H, W]}),
     r"annotations\[0\] \(id 1\): RLE segmentation needs 'size' and 'counts'"),
    ("rle-wrong-size", _set("annotations", 0, "segmentation", "size", [W, H]),
     r"annotations\[0\] \(id 1\): RLE size \[30, 20\] differs from image size \[20, 30\]"),
    ("rle-int-counts", _set("annotations", 0, "segmentation", "counts", 5),
     r"annotations\[0\] \(id 1\): RLE counts must be a string \(compressed\) or a list of run lengths"),
    ("rle-negative-run", _set("annotations", 0, "segmentation", {"size": [H, W], "counts": [-1, H * W + 1]}),
     r"annotations\[0\] \(id 1\): uncompressed RLE counts must be whole numbers >= 0"),
    ("rle-short-runs", _set("annotations", 0, "segmentation", {"size": [H, W], "counts": [1, 2]}),
     r"annotations\[0\] \(id 1\): uncompressed RLE counts cover 3 pixels, not 20×30 = 600"),
    ("segmentation-string", _set("annotations", 0, "segmentation", "mask"),
     r"annotations\[0\] \(id 1\): segmentation must be a polygon list or an RLE dict"),
    ("empty-mask", _set("annotations", 0, "segmentation", {"size": [H, W], "counts": [H * W]}),
     r"annotations\[0\] \(id 1\): empty mask"),
    # found by tools/fuzz.py: pycocotools checks nothing, and crashes or reads garbage on these
    ("polygon-far-point", _set("annotations", 1, "segmentation", [[1e10, 1, 2, 1e10, 5, 6]]),
     r"annotations\[1\] \(id 2\): segmentation: polygon 0 has the point \(1e\+10, 1\) far outside the 30×20 image"),
    ("polygon-nan", _set("annotations", 1, "segmentation", [[float("nan")] * 6]),
     r"segmentation: polygon 0 holds a value that is not a finite number"),
    ("polygon-strings", _set("annotations", 1, "segmentation", [["1"] * 6]),
     r"segmentation: polygon 0 holds a value that is not a number"),
    ("rle-garbage", _set("annotations", 0, "segmentation", "counts", "!!!!"),
     r"annotations\[0\] \(id 1\): RLE counts hold characters outside the COCO alphabet"),
    ("rle-non-ascii", _set("annotations", 0, "segmentation", "counts", "é"), r"outside the COCO alphabet"),
    ("rle-cut-short", _set("annotations", 0, "segmentation", "counts", "a"), r"RLE counts end in the middle of a run"),
    ("rle-wrong-total", _set("annotations", 0, "segmentation", "counts", "PP1"),
     r"annotations\[0\] \(id 1\): RLE counts cover 1024 pixels, not 20×30 = 600"),
    ("rle-empty-string", _set("annotations", 0, "segmentation", "counts", ""), r"RLE counts cover 0 pixels"),
    ("bbox-nan", _set("annotations", 2, "bbox", [float("nan"), 0, 1, 1]),
     r"annotations\[2\] \(id 3\): bbox must be \[x, y, width, height\] of finite numbers"),
    ("bbox-bools", _set("annotations", 2, "bbox", [True, 0, 1, 1]), r"bbox must be"),
    ("area-string", _set("annotations", 0, "area", "0x10"),
     r"annotations\[0\] \(id 1\): area '0x10' is not a number >= 0"),
    ("area-negative", _set("annotations", 0, "area", -5), r"area -5 is not a number >= 0"),
    ("iscrowd-yes", _set("annotations", 0, "iscrowd", "yes"),
     r"annotations\[0\] \(id 1\): iscrowd 'yes' is neither 0 nor 1"),
    ("image-id-too-large", _set("images", 0, "id", 2**63),
     r"images\[0\] \(id 9223372036854775808\): 'id' must be a whole number"),
    ("ann-id-negative", _set("annotations", 0, "id", -1), r"annotations\[0\]: needs an integer 'id' \(0 to 2\^63-1\)"),
    ("category-bool-id", _set("categories", 0, "id", True), r"categories\[0\]: needs an integer 'id'"),
    ("ann-list-image-id", _set("annotations", 0, "image_id", [1, 2]), r"image_id \[1, 2\] is not in images"),
    ("ann-list-category", _set("annotations", 0, "category_id", [1]), r"category_id \[1\] is not in categories"),
    ("image-too-large", _set("images", 0, "width", 10**9),
     r"images\[0\] \(id 1\): 1000000000×20 is more pixels than an image may have \(89,478,485"),
]


@pytest.mark.parametrize("mutate, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_record_is_one_line_naming_the_file_and_the_record(tmp_path, mutate, message):
    data = copy.deepcopy(valid())
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(DatasetError) as err:
        load_coco(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert re.search(message, text[len(path) + 2:]), text


@pytest.mark.parametrize("content, message", [
    ("", r"invalid JSON at line 1 column 1"),
    ('{"images": [', r"invalid JSON at line 1"),
    ("[1, 2]", r"expected a JSON object with images, annotations, categories"),
    (b"\xff\xfe{", r"cannot read|invalid JSON"),
    ("[" * 100000 + "]" * 100000, r"invalid JSON \(nested too deeply to be a COCO file\)"),
    ('{"images": [], "annotations": [], "categories": [], "info": 5}', r"'info' is not an object"),
], ids=["empty", "cut-short", "a-list", "not-utf8", "nested-deep", "info-a-number"])
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DatasetError, match=message) as err:
        load_coco(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere.json: file not found"):
        load_coco(tmp_path / "nowhere.json")


def test_crowd_and_box_only_records_are_accepted(tmp_path):
    data = valid()
    data["annotations"][0]["iscrowd"] = 1
    data["annotations"][0]["segmentation"] = {"size": [H, W], "counts": [H * W]}  # empty crowd: allowed
    assert len(load_coco(write(tmp_path, data)).annotations) == 3


def test_image_files_are_not_needed_without_check_files(tmp_path):
    data = valid()
    data["images"][1]["file_name"] = "elsewhere/three.png"
    dataset = load_coco(write(tmp_path, data), check_files=False)
    assert dataset.image_file(dataset.images[1]) == tmp_path / "elsewhere" / "three.png"


# ------------------------------------------------------------------ file names inside the image folder

def _dataset(tmp_path, file_name: str):
    """A one-image COCO json under tmp_path/data whose image is `file_name`; a valid PNG lies both inside
    data/images/ and outside it (tmp_path/secret.png), so only the path check can refuse the record."""
    images = tmp_path / "data" / "images"
    (images / "sub").mkdir(parents=True)
    pixels = np.zeros((32, 32, 3), np.uint8)
    for p in (images / "a.png", images / "sub" / "b.png", tmp_path / "secret.png"):
        Image.fromarray(pixels).save(p)
    coco = {"images": [{"id": 7, "width": 32, "height": 32, "file_name": file_name}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [2, 2, 8, 8], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "thing"}]}
    ann = tmp_path / "data" / "annotations.json"
    ann.write_text(json.dumps(coco))
    return ann, images


@pytest.mark.parametrize("name, outside", [
    ("a.png", False), ("sub/b.png", False), ("sub/../a.png", False), ("./a.png", False), ("..a.png", False),
    ("../secret.png", True), ("../../etc/hostname", True), ("sub/../../secret.png", True), ("/etc/hostname", True),
    ("..", True), ("..\\secret.png", True), ("C:/secret.png", True),
])
def test_outside_file_names_are_told_apart(name, outside):
    assert outside_file_name(name) is outside


@pytest.mark.parametrize("name", ["../../secret.png", "sub/../../../secret.png", "ABSOLUTE"])
def test_a_file_name_leaving_the_image_folder_is_refused_naming_the_record(tmp_path, name):
    if name == "ABSOLUTE":
        name = str(tmp_path / "secret.png")
    ann, images = _dataset(tmp_path, name)
    with pytest.raises(DatasetError) as err:
        load_coco(ann, images)
    message = str(err.value)
    assert message.startswith(f"{ann}: images[0] (id 7): file_name {name!r}") and "\n" not in message
    # the explicit option reads it
    ds = load_coco(ann, images, allow_outside_paths=True)
    assert ds.image_file(ds.images[0]).resolve() == (tmp_path / "secret.png").resolve()


def test_file_names_inside_the_folder_are_read(tmp_path):
    ann, images = _dataset(tmp_path, "sub/../sub/b.png")
    ds = load_coco(ann, images)
    assert ds.image_file(ds.images[0]).resolve() == (images / "sub" / "b.png").resolve()


@pytest.mark.parametrize("command", ["augment", "export"])
def test_commands_refuse_a_hostile_file_name_in_one_line(tmp_path, command):
    ann, images = _dataset(tmp_path, str(tmp_path / "secret.png"))
    out = tmp_path / "out"
    if command == "augment":
        argv = ["augment", "--coco", str(ann), "--images", str(images), "--out", str(out), "--copy-paste", "--quiet"]
    else:
        argv = ["export", str(ann.parent), "--format", "coco", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-m", "vision_synth", *argv], capture_output=True, text=True, env=env)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "images[0] (id 7)" in lines[0] and "leaves the image folder" in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
