import argparse
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import check_coco_labels, coco_self_eval, synthetic_samples, write_coco_dataset
from vision_synth import masks as mask_ops
from vision_synth.coco.commands import add_dataset_parsers
from vision_synth.coco.export import export_dataset, join_polygon_parts
from vision_synth.coco.split import split_dataset
from vision_synth.errors import VisionSynthError
from vision_synth.types import Instances, Provenance, Sample

H, W = 64, 80


def vision_synth(*argv) -> int:
    """The dataset commands as `vision-synth` runs them (cli.main adds only the error printing)."""
    parser = argparse.ArgumentParser(prog="vision-synth")
    add_dataset_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def two_part_sample(index: int) -> Sample:
    """An instance occluded into two parts (a big and a small one) beside a whole one."""
    split = np.zeros((H, W), bool)
    split[10:34, 8:32] = True
    split[44:50, 60:66] = True
    whole = np.zeros((H, W), bool)
    whole[40:60, 10:40] = True
    image = np.full((H, W, 3), 90, np.uint8)
    image[split], image[whole] = (200, 40, 40), (40, 200, 40)
    return Sample(index, 0, image, Instances(np.stack([split, whole]), [1, 2]), Provenance("test", synthetic=False))


def empty_sample(index: int) -> Sample:
    image = np.full((H, W, 3), 60, np.uint8)
    return Sample(index, 0, image, Instances.empty(H, W), Provenance("test", synthetic=False))


@pytest.fixture
def dataset(tmp_path):
    """annotations.json, images dir, samples: the shared shapes, a split mask and an image without labels."""
    samples = synthetic_samples(n_images=6, size=(H, W)) + [two_part_sample(6), empty_sample(7)]
    ann, images = write_coco_dataset(tmp_path / "dataset", samples)
    return ann, images, samples


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def torchvision_items(annotations, images):
    from torchvision import datasets

    ds = datasets.wrap_dataset_for_transforms_v2(datasets.CocoDetection(str(images), str(annotations)),
                                                 target_keys={"image_id", "boxes", "masks", "labels"})
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("variant", ["compressed-rle", "polygon", "rle-uncompressed"])
def test_torchvision_coco_detection_reads_our_boxes_and_masks(tmp_path, dataset, variant):
    ann, images, samples = dataset
    if variant != "compressed-rle":
        export_dataset(ann.parent, tmp_path / "out", "coco", segmentation=variant)
        ann, images = tmp_path / "out" / "annotations.json", tmp_path / "out" / "images"
    data = json.loads(ann.read_text())
    by_image = {im["id"]: [a for a in data["annotations"] if a["image_id"] == im["id"]] for im in data["images"]}
    for (image, target), sample in zip(torchvision_items(ann, images), samples):
        anns = by_image[target["image_id"]]
        assert target["image_id"] == sample.index + 1
        if not anns:
            assert set(target) == {"image_id"}  # torchvision's wrapper gives no boxes for an unlabelled image
            continue
        masks = target["masks"].numpy().astype(bool)
        expected = np.stack([mask_ops.segmentation_to_mask(a["segmentation"], H, W) for a in anns])
        assert np.array_equal(masks, expected)
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        assert torch.equal(target["boxes"].as_subclass(torch.Tensor), torch.tensor(xyxy, dtype=target["boxes"].dtype))
        assert target["labels"].tolist() == [a["category_id"] for a in anns]
        assert np.array_equal(mask_ops.derive_boxes(masks), np.array([a["bbox"] for a in anns]))
        if variant == "polygon":  # polygons trace pixel centres: close to the mask, not equal
            assert all(iou(m, s) > 0.6 for m, s in zip(masks, sample.instances.masks))
        else:
            assert np.array_equal(masks, sample.instances.masks)


@pytest.mark.parametrize("segmentation", ["polygon", "rle-uncompressed"])
def test_coco_exports_load_in_pycocotools_with_exact_labels(tmp_path, dataset, segmentation):
    ann, _, _ = dataset
    export_dataset(ann.parent, tmp_path / "out", "coco", segmentation=segmentation)
    exported = tmp_path / "out" / "annotations.json"
    data = check_coco_labels(exported)  # ids from 1, area = pixels of the written mask, bbox = its extent
    kind = list if segmentation == "polygon" else dict
    assert all(isinstance(a["segmentation"], kind) for a in data["annotations"])
    if segmentation == "rle-uncompressed":
        assert all(isinstance(a["segmentation"]["counts"], list) for a in data["annotations"])
    assert coco_self_eval(exported, "bbox") == 1.0
    if segmentation == "polygon":  # (the helper scores uncompressed RLE only as ground truth, not as results)
        assert coco_self_eval(exported, "segm") == 1.0
    else:
        from pycocotools.coco import COCO

        gt = COCO(str(exported))
        for a in data["annotations"]:
            image = gt.imgs[a["image_id"]]
            mask = mask_ops.segmentation_to_mask(a["segmentation"], image["height"], image["width"])
            assert np.array_equal(gt.annToMask(a).astype(bool), mask)
            assert gt.annToRLE(a)["counts"] == mask_ops.encode_rle(mask[None])[0]["counts"].encode()
    source = json.loads(ann.read_text())
    assert [a["id"] for a in data["annotations"]] == [a["id"] for a in source["annotations"]]
    assert all(a["source"] == b["source"] for a, b in zip(data["annotations"], source["annotations"]))


def test_coco_polygons_largest_keeps_one_part(tmp_path, dataset):
    ann, _, samples = dataset
    export_dataset(ann.parent, tmp_path / "out", "coco", polygons="largest")
    split_ann = next(a for a in json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
                     if a["image_id"] == 7 and a["category_id"] == 1)
    assert len(split_ann["segmentation"]) == 1
    x, y, w, h = split_ann["bbox"]  # inside the big part (10:34, 8:32); the small part is gone
    assert x >= 8 and y >= 10 and x + w <= 32 and y + h <= 34 and split_ann["area"] >= 20 * 20


def read_yolo(out, image_path):
    label = out / "labels" / image_path.relative_to(out / "images").with_suffix(".txt")
    return [line.split() for line in label.read_text().splitlines()]


def test_yolo_export_round_trips_boxes_within_a_pixel(tmp_path, dataset):
    ann, _, samples = dataset
    result = export_dataset(ann.parent, tmp_path / "yolo", "yolo")
    out = tmp_path / "yolo"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out.resolve()) and data["train"] == data["val"] == "images"
    categories = sorted(json.loads(ann.read_text())["categories"], key=lambda c: c["id"])
    assert data["names"] == {k: c["name"] for k, c in enumerate(categories)}
    assert result.images == {"all": len(samples)} and any("val = train" in n for n in result.notes)
    for sample in samples:
        rows = read_yolo(out, out / "images" / f"{sample.index + 1:09d}.png")
        assert (out / "images" / f"{sample.index + 1:09d}.png").is_file()
        assert len(rows) == len(sample.instances)
        for row, box, cat in zip(rows, sample.instances.boxes, sample.instances.category_ids):
            k, cx, cy, w, h = int(row[0]), *map(float, row[1:])
            assert categories[k]["id"] == cat
            back = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            assert np.allclose(back, box, atol=1.0)


def rasterise(row, height=H, width=W) -> np.ndarray:
    """A YOLO-seg line drawn as ultralytics draws it (cv2.fillPoly at pixel coordinates)."""
    points = np.array(row[1:], float).reshape(-1, 2) * [width, height]
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


@pytest.mark.parametrize("polygons", ["all", "largest"])
def test_yolo_seg_polygons_rasterise_to_the_masks(tmp_path, dataset, polygons):
    ann, _, samples = dataset
    split_dataset(ann.parent, "0.5,0.5", seed=0)
    export_dataset(ann.parent, tmp_path / "seg", "yolo-seg", polygons=polygons)
    out = tmp_path / "seg"
    files = {p.name: p for p in (out / "images").rglob("*.png")}
    assert len(files) == len(samples)
    for sample in samples:
        rows = read_yolo(out, files[f"{sample.index + 1:09d}.png"])
        assert len(rows) == len(sample.instances)
        for row, mask in zip(rows, sample.instances.masks):
            assert len(row) >= 7 and (len(row) - 1) % 2 == 0
            drawn = rasterise(row)
            if sample.index == 6 and row[0] == "0":  # the two-part instance
                small = np.zeros_like(mask)
                small[44:50, 60:66] = True
                covered = drawn[small].mean()
                assert covered > 0.9 if polygons == "all" else covered == 0
                assert drawn[10:34, 8:32].all()
            else:
                assert iou(drawn, mask) > 0.85


def test_joined_parts_fill_like_the_parts():
    a = np.array([[0, 0], [9, 0], [9, 9], [0, 9]], float)
    b = a + [30, 5]
    c = a + [15, 30]
    joined = join_polygon_parts([a, b, c])
    assert len(joined) == 12 + 2 * 2  # every vertex, plus the two ends of each bridge once more
    canvas = np.zeros((50, 50), np.uint8)
    cv2.fillPoly(canvas, [joined.astype(np.int32)], 1)
    parts = np.zeros((50, 50), np.uint8)
    cv2.fillPoly(parts, [p.astype(np.int32) for p in (a, b, c)], 1)
    assert canvas[parts.astype(bool)].all() and (canvas & ~parts).sum() < 40  # bridges are one pixel wide


def test_split_aware_exports(tmp_path, dataset):
    ann, _, samples = dataset
    split_dataset(ann.parent, "0.5,0.25,0.25", seed=2)
    sizes = {name: len(json.loads((ann.parent / f"annotations_{name}.json").read_text())["images"])
             for name in ("train", "val", "test")}
    result = vision_synth("export", ann.parent, "--format", "yolo", "--out", tmp_path / "yolo")
    assert result == 0
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert {k: data[k] for k in ("train", "val", "test")} == {n: f"images/{n}" for n in sizes}
    for name, n in sizes.items():
        assert len(list((tmp_path / "yolo" / "images" / name).iterdir())) == n
        assert len(list((tmp_path / "yolo" / "labels" / name).iterdir())) == n

    coco = export_dataset(ann.parent, tmp_path / "coco", "coco", segmentation="rle-uncompressed")
    assert coco.images == sizes
    for name in sizes:
        exported = json.loads((tmp_path / "coco" / f"annotations_{name}.json").read_text())
        assert len(exported["images"]) == sizes[name]
        assert all(isinstance(a["segmentation"]["counts"], list) for a in exported["annotations"])
    assert len(list((tmp_path / "coco" / "images").iterdir())) == len(samples)


@pytest.mark.parametrize("flag", ["--link", "--symlink"])
def test_images_can_be_linked(tmp_path, dataset, flag):
    ann, images, _ = dataset
    vision_synth("export", ann.parent, "--format", "coco", "--out", tmp_path / "out", flag)
    src, dst = images / "000000001.png", tmp_path / "out" / "images" / "000000001.png"
    if flag == "--link":
        assert dst.stat().st_ino == src.stat().st_ino and not dst.is_symlink()
    else:
        assert dst.is_symlink() and dst.resolve() == src.resolve()


@pytest.mark.parametrize("argv, message", [
    (["--format", "yolo", "--segmentation", "polygon"], "--segmentation applies to --format coco"),
    (["--format", "yolo", "--polygons", "all"], "--polygons applies"),
    (["--format", "coco", "--segmentation", "rle-uncompressed", "--polygons", "largest"], "--polygons applies"),
])
def test_misplaced_export_flags_are_one_line_errors(tmp_path, dataset, argv, message):
    with pytest.raises(VisionSynthError, match=message) as err:
        vision_synth("export", dataset[0].parent, "--out", tmp_path / "out", *argv)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_export_refuses_a_used_folder_and_leaves_nothing_behind_on_error(tmp_path, dataset):
    ann, _, _ = dataset
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(VisionSynthError, match="not empty"):
        vision_synth("export", ann.parent, "--format", "yolo", "--out", tmp_path / "used")
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
    with pytest.raises(VisionSynthError, match="no such dataset folder"):
        vision_synth("export", tmp_path / "missing", "--format", "yolo", "--out", tmp_path / "new")
    (ann.parent / "images" / "000000003.png").unlink()  # a broken dataset fails before anything is written
    with pytest.raises(VisionSynthError, match="000000003.png not found"):
        vision_synth("export", ann.parent, "--format", "coco", "--out", tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "used"]


def test_yolo_boxes_are_the_mask_extents_even_without_or_against_the_coco_box(tmp_path, dataset):
    """A segmentation without `bbox` is valid COCO (a KeyError before, found by tools/fuzz.py), and a
    box that disagrees with its mask is not the label: the mask is."""
    ann, _, samples = dataset
    data = json.loads(ann.read_text())
    for k, record in enumerate(data["annotations"]):
        if k % 2:
            del record["bbox"]
        else:
            record["bbox"] = [0, 0, 3, 3]
    ann.write_text(json.dumps(data))
    export_dataset(ann.parent, tmp_path / "yolo", "yolo")
    for sample in samples:
        rows = read_yolo(tmp_path / "yolo", tmp_path / "yolo" / "images" / f"{sample.index + 1:09d}.png")
        for row, box in zip(rows, sample.instances.boxes):
            cx, cy, w, h = map(float, row[1:])
            assert np.allclose([(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H], box, atol=1e-3)
