"""The COCO reader keeps image paths inside the image folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vision_synth.coco.reader import load_coco, outside_file_name
from vision_synth.errors import DatasetError


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
