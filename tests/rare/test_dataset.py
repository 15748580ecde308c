import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import check_coco_labels, coco_self_eval
from rare_helpers import run, write_rare_dataset
from vision_synth.rare.dataset import SYNTHETIC_PREFIX, augment_rare
from vision_synth.imageio import read_image, write_image
from vision_synth.rare.policy import load_policy

POLICY = {
    "seed": 3,
    "target_per_class": 8,
    "eval": {"ratio": 0.25},
    "classes": {
        "crack": {"source": "copy-paste", "max_synthetic_fraction": 0.6},
        "stain": {"source": "procedural", "defect": {"kind": "stain"}, "target": 12},
        "scratch": {"target": 0},
    },
}


@pytest.fixture
def dataset(tmp_path):
    return write_rare_dataset(tmp_path / "ds")


def _augment(tmp_path, dataset, policy=POLICY, out="out"):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    summary = augment_rare(*dataset, load_policy(path), tmp_path / out, policy_path=str(path), show_progress=False)
    return summary, tmp_path / out


def _dump(record) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def test_policy_counts_met_labels_exact_real_records_unchanged(tmp_path, dataset):
    summary, out = _augment(tmp_path, dataset)
    original = json.loads(dataset[0].read_text())
    data = check_coco_labels(out / "annotations.json")
    report = json.loads((out / "rare_report.json").read_text())
    eval_ids = {im["id"] for im in json.loads((out / "annotations_eval.json").read_text())["images"]}
    # counts: each class added what the policy planned, within its cap
    for row in report["classes"]:
        assert row["added"] == row["planned"], row
        added = sum(1 for a in data["annotations"] if a["category_id"] == row["category_id"]
                    and a.get("synthetic") and a["source"] != "real")
        assert added == row["added"]
        if row["cap"] is not None:
            assert row["added"] <= row["cap"]
    by_name = {row["name"]: row for row in report["classes"]}
    assert by_name["crack"]["added"] > 0 and by_name["stain"]["added"] > 0 and by_name["scratch"]["added"] == 0
    crack = by_name["crack"]
    assert crack["added"] / (crack["added"] + crack["real_train"]) <= 0.6
    # real records: the same JSON, first and in order; real files byte-identical
    n_im, n_ann = len(original["images"]), len(original["annotations"])
    assert [_dump(r) for r in data["images"][:n_im]] == [_dump(r) for r in original["images"]]
    assert [_dump(r) for r in data["annotations"][:n_ann]] == [_dump(r) for r in original["annotations"]]
    for im in original["images"]:
        assert (out / "images" / im["file_name"]).read_bytes() == (dataset[1] / im["file_name"]).read_bytes()
    # new records: after the real ones, ids above them, flagged, with a source
    new_images, new_anns = data["images"][n_im:], data["annotations"][n_ann:]
    assert new_images and min(im["id"] for im in new_images) > max(im["id"] for im in original["images"])
    assert min(a["id"] for a in new_anns) > max(a["id"] for a in original["annotations"])
    for im in new_images:
        assert im["synthetic"] is True and im["source"] in ("copy-paste", "procedural")
        assert im["file_name"].startswith(SYNTHETIC_PREFIX) and (out / "images" / im["file_name"]).is_file()
        assert im["pasted_on"] not in eval_ids  # eval images are never paste targets
    assert all(a["synthetic"] is True and a["source"] in ("copy-paste", "procedural", "real") for a in new_anns)
    assert coco_self_eval(out / "annotations.json", "segm") == pytest.approx(1.0)
    # eval split: real records only, exactly as read; train file = the rest + new
    ev = json.loads((out / "annotations_eval.json").read_text())
    assert ev["images"] and not any(im.get("synthetic") for im in ev["images"])
    assert {_dump(r) for r in ev["images"]} <= {_dump(r) for r in original["images"]}
    train = json.loads((out / "annotations_train.json").read_text())
    assert not ({im["id"] for im in train["images"]} & eval_ids)
    assert len(train["images"]) + len(ev["images"]) == len(data["images"])
    assert "crack" in (out / "dataset_card.md").read_text()
    assert summary.added[3] == crack["added"]


def test_eval_split_is_never_pasted_from(tmp_path, dataset):
    # an eval split holding every crack: copy-paste of cracks has nothing to cut from
    original = json.loads(dataset[0].read_text())
    crack_images = {a["image_id"] for a in original["annotations"] if a["category_id"] == 3}
    ev = {**original, "images": [im for im in original["images"] if im["id"] in crack_images],
          "annotations": [a for a in original["annotations"] if a["image_id"] in crack_images]}
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    policy = {**POLICY, "eval": {"coco": str(tmp_path / "eval.json")},
              "classes": {"crack": {"source": "copy-paste", "max_synthetic_fraction": 1.0}}}
    with pytest.raises(Exception, match="no instance in the training part"):
        _augment(tmp_path, dataset, policy)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # nothing half-written left


def test_rerun_is_byte_identical(tmp_path, dataset):
    """Every file: annotations, images, the card and rare_report.json (which once held the seconds
    each source took, so that a rerun after a kill differed from an uninterrupted run)."""
    _, a = _augment(tmp_path, dataset, out="a")
    _, b = _augment(tmp_path, dataset, out="b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert {Path("annotations.json"), Path("rare_report.json")} <= set(files)
    for rel in files:
        if rel.suffix not in (".yaml",):  # (data.yaml names its own folder)
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_cli_augment_rare(tmp_path, dataset, capsys):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY))
    code = run(["augment-rare", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--out",
                str(tmp_path / "out"), "--config", str(tmp_path / "p.yaml"), "--seed", "1", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "crack" in printed and "added" in printed
    argv = ["augment-rare", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--out", str(tmp_path / "out"),
            "--quiet"]
    assert run(argv) == 2 and "is not empty" in capsys.readouterr().err
    assert run([*argv, "--overwrite"]) == 0
    assert (tmp_path / "out" / "annotations.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


@pytest.mark.parametrize("case, message", [
    ("unknown_class", "classes.dent: no category named 'dent'"),
    ("malformed_json", "invalid JSON at line"),
    ("bad_record", "annotations[0] (id 1): category_id 99 is not in categories"),
    ("image_size", "images[1] (id 2): image file"),  # found by tools/fuzz.py: an IndexError when pasting
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, dataset, capsys, case, message):
    coco = dataset[0]
    policy = dict(POLICY)
    if case == "unknown_class":
        policy = {**POLICY, "classes": {"dent": {}}}
    elif case == "malformed_json":
        coco = tmp_path / "broken.json"
        coco.write_text(dataset[0].read_text()[:-20])
    elif case == "image_size":  # every image is the record's size but this one
        images = tmp_path / "images"
        shutil.copytree(dataset[1], images)
        name = json.loads(dataset[0].read_text())["images"][1]["file_name"]
        write_image(images / name, np.zeros((20, 30, 3), np.uint8), "png")
        dataset = (dataset[0], images)
        message += f" {images / name} is 30×20, the record says"
    else:
        data = json.loads(dataset[0].read_text())
        data["annotations"][0]["category_id"] = 99
        coco = tmp_path / "bad.json"
        coco.write_text(json.dumps(data))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    code = run(["augment-rare", "--coco", str(coco), "--images", str(dataset[1]), "--out", str(tmp_path / "out"),
                "--config", str(tmp_path / "p.yaml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_box_only_crops_and_part_region(tmp_path, dataset):
    """Box-only annotations paste as a feathered ellipse; new instances stay inside the part mask."""
    import cv2
    import numpy as np

    from vision_synth import masks as mask_ops

    data = json.loads(dataset[0].read_text())
    for ann in data["annotations"]:
        if ann["category_id"] == 3:
            del ann["segmentation"]  # keep only the box
    (tmp_path / "boxes.json").write_text(json.dumps(data))
    part = np.zeros((64, 64), np.uint8)
    part[:, :40] = 255
    cv2.imwrite(str(tmp_path / "part.png"), part)
    policy = {**POLICY, "region": str(tmp_path / "part.png"),
              "classes": {"crack": {"source": "copy-paste", "max_synthetic_fraction": 0.6},
                          "scratch": {"target": 0}, "stain": {"target": 0}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(policy))
    summary = augment_rare(tmp_path / "boxes.json", dataset[1], load_policy(path), tmp_path / "out", show_progress=False)
    assert summary.added[3] > 0
    out = json.loads((tmp_path / "out" / "annotations.json").read_text())
    pasted = [a for a in out["annotations"] if a.get("source") == "copy-paste"]
    assert len(pasted) == summary.added[3]
    for ann in pasted:
        mask = mask_ops.segmentation_to_mask(ann["segmentation"], 64, 64)
        assert not mask[:, 40:].any()


NUCLEI = Path(__file__).resolve().parents[1] / "assets" / "nuclei_dev" / "train_few"


def _nuclei_argv(out, *extra):
    return ["augment-rare", "--coco", str(NUCLEI / "annotations.json"), "--images", str(NUCLEI / "images"),
            "--out", str(out), "--quiet", *extra]


def test_one_image_needs_an_eval_choice_and_the_message_names_this_commands_options(tmp_path, capsys):
    assert run(_nuclei_argv(tmp_path / "out", "--target", "24")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--eval FILE.json" in err and "--eval none" in err and "eval: none" in err
    assert "allow-synthetic-eval" not in err
    assert not (tmp_path / "out").exists()
    # one class and no target: the default policy cannot choose one, and says which flag does
    assert run(_nuclei_argv(tmp_path / "out", "--eval", "none")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one class ('nucleus', 12 real instances)" in err and "--target N" in err
    assert not (tmp_path / "out").exists()


def test_eval_none_is_said_in_report_card_and_table(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(_nuclei_argv(out, "--target", "24", "--eval", "none")) == 0
    printed = capsys.readouterr().out
    assert "no pure-real eval split" in printed and "classes below 24 raised to it, synthetic share capped at 0.5" in printed
    report = json.loads((out / "rare_report.json").read_text())
    assert report["pure_real_eval_split"] is False and report["eval_images"] == 0
    assert report["classes"][0]["added"] == 12  # 24 wanted, capped at 12 (a 0.5 share)
    assert not (out / "annotations_eval.json").exists()
    assert "no pure-real eval split" in (out / "dataset_card.md").read_text()


def test_default_policy_raises_classes_below_the_median(tmp_path, dataset, capsys):
    out = tmp_path / "out"
    assert run(["augment-rare", "--coco", str(dataset[0]), "--images", str(dataset[1]), "--out", str(out),
                "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "rare_report.json").read_text())
    rows = {r["name"]: r for r in report["classes"]}
    median = sorted(r["real_train"] for r in rows.values())[1]
    assert f"classes below the median class count ({median}) raised to it, synthetic share capped at 0.5" in printed
    for row in rows.values():
        wanted = max(0, median - row["real_train"])
        assert row["target"] == (median if wanted else row["real_train"])
        assert row["added"] == min(wanted, row["real_train"])  # 0.5 cap: at most as many as the real ones
    assert rows["crack"]["added"] > 0 and rows["crack"]["source"] == "copy-paste"


def test_paste_defaults_follow_the_real_instances(tmp_path):
    """On real nuclei: pasted instances cover nothing, come a quarter to a half of the image's own count
    per image, stay within the real sizes, and a greyscale image stays greyscale."""
    from vision_synth.coco.reader import load_coco
    from vision_synth.rare.dataset import density_count

    out = tmp_path / "out"
    assert run(_nuclei_argv(out, "--target", "60", "--eval", "none")) == 0
    report = json.loads((out / "rare_report.json").read_text())
    assert report["paste"]["nucleus"]["color_jitter"]["saturation"] == [1.0, 1.0]
    assert report["paste"]["nucleus"]["rotation"] == [-180.0, 180.0]  # round nuclei: any turn
    real = load_coco(NUCLEI / "annotations.json", NUCLEI / "images")
    sides = [max(a["bbox"][2], a["bbox"][3]) for a in real.annotations]
    data = load_coco(out / "annotations.json", out / "images")
    lo, hi = density_count(12)
    new = [im for im in data.images if im.get("synthetic")]
    assert new
    for k, im in enumerate(new):
        inst = data.instances(im)
        pasted = [a for a in data.annotations_of(im["id"]) if a["source"] != "real"]
        assert len(inst) == 12 + len(pasted)
        assert inst.masks.sum(axis=0).max() == 1  # no instance covers another
        assert 1 <= len(pasted) <= hi and (len(pasted) >= lo or k == len(new) - 1)
        for a in pasted:
            assert min(sides) - 2 <= max(a["bbox"][2], a["bbox"][3]) <= max(sides) + 2
        pixels = read_image(out / "images" / im["file_name"])
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
