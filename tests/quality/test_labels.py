"""Label sanity finds each kind of bad annotation; box-size and position distributions compared with
a reference are 0 apart for the same data and far apart for different data."""

import json

import numpy as np
import pytest

from helpers import write_coco_dataset
from quality_helpers import real, synthetic
from vision_synth import masks as mask_ops
from vision_synth.coco.reader import load_coco
from vision_synth.quality.labels import check_labels

H = W = 32


def dataset_with(tmp_path, annotation_changes: dict):
    """A one-image dataset whose only annotation (a 6×5 rectangle) gets `annotation_changes`."""
    mask = np.zeros((H, W), bool)
    mask[10:15, 4:10] = True
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 10, 6, 5], "area": 30,
           "segmentation": mask_ops.encode_rle(mask[None])[0], "iscrowd": 0}
    ann.update(annotation_changes)
    data = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}], "annotations": [ann],
            "categories": [{"id": 1, "name": "thing"}]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return load_coco(path, check_files=False)


def tiny_mask_rle():
    mask = np.zeros((H, W), bool)
    mask[3, 3] = True
    return mask_ops.encode_rle(mask[None])[0]


@pytest.mark.parametrize("changes, kinds", [
    ({}, set()),
    ({"bbox": [4, 10, 6, 6]}, {"box differs from mask"}),
    ({"area": 36}, {"area differs from mask"}),
    ({"bbox": [27, 10, 6, 5]}, {"box outside image", "box differs from mask"}),  # the reader allows 1 px
    ({"iscrowd": 1}, {"crowd"}),
    ({"segmentation": tiny_mask_rle(), "bbox": [3, 3, 1, 1], "area": 1}, {"mask too small", "box too small"}),
])
def test_each_kind_of_label_issue_is_found(tmp_path, changes, kinds):
    report = check_labels(dataset_with(tmp_path, changes))
    assert set(report.issues_by_kind) == kinds
    assert report.issues == len(kinds)
    assert all(e.annotation_id == 1 for e in report.examples)


def test_an_empty_mask_is_an_issue(tmp_path):
    # load_coco refuses empty masks of non-crowd annotations, so build the dataset past it
    dataset = dataset_with(tmp_path, {"iscrowd": 1})
    dataset.annotations[0]["segmentation"] = mask_ops.encode_rle(np.zeros((1, H, W), bool))[0]
    dataset.annotations[0]["iscrowd"] = 0
    assert check_labels(dataset).issues_by_kind == {"empty mask": 1}


def test_generated_labels_are_clean_and_counted_by_class(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "d", synthetic(8, seed=1))
    ref_ann, ref_images = write_coco_dataset(tmp_path / "r", real(8, seed=2))
    dataset, reference = load_coco(ann, images), load_coco(ref_ann, ref_images)
    report = check_labels(dataset, reference)
    assert report.issues == 0
    assert set(report.counts) == {"class1", "class2", "class3"}
    assert sum(c["synthetic"] for c in report.counts.values()) == len(dataset.annotations)
    assert sum(c["reference"] for c in report.counts.values()) == len(reference.annotations)
    assert all(c["real"] == 0 for c in report.counts.values())


def test_distributions_of_the_same_data_are_zero_apart_and_of_shifted_data_far(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "d", synthetic(12, seed=3))
    dataset = load_coco(ann, images)
    same = check_labels(dataset, load_coco(ann, images))
    assert same.distances["all"]["size"] == {"wasserstein": 0.0, "ks": 0.0, "n_synthetic": len(dataset.annotations),
                                             "n_reference": len(dataset.annotations)}
    assert same.max_ks("size") == 0.0
    # the same boxes, all moved to the left half: x is far apart, size unchanged
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        a["bbox"][0] = a["bbox"][0] * 0.3
    shifted_path = tmp_path / "shifted.json"
    shifted_path.write_text(json.dumps(data))
    shifted = check_labels(dataset, load_coco(shifted_path, images))
    assert shifted.distances["all"]["x"]["ks"] > 0.4
    assert shifted.distances["all"]["size"]["ks"] == 0.0
    assert set(shifted.values["all"]) == {"size", "aspect", "x", "y"}
