"""`vision-synth check` end to end (proxy features, tiny images): a dataset that meets the thresholds is
published; one that breaks a threshold is rejected (exit 3) and nothing about it looks published;
a planted duplicate and a planted copy of a reference image are caught."""

import json
from pathlib import Path

import pytest
import yaml

from quality_helpers import check_args, make_pair, real, synthetic
from vision_synth.coco.reader import load_coco
from vision_synth.errors import ConfigError, VisionSynthError
from vision_synth.quality.gate import GateFailed
from vision_synth.quality.spec import WEIGHTS_ENV

pytest.importorskip("torch_fidelity", reason="the check's features need torch-fidelity (the fid extra)")

FAST = {"fidelity": {"features": "proxy", "per_class": False, "kid_subset_size": 10, "kid_subsets": 5},
        # the test shapes include 1-pixel slivers, which the default minimum sizes flag (tests/quality/test_labels.py)
        "labels": {"min_area": 1, "min_side": 1}}


def write_quality_config(tmp_path, gate: dict, **sections) -> str:
    data = {**FAST, **sections, "gate": gate, "sample_grid": 4}
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def invoke(*argv):
    args = check_args(*argv)
    return args.func(args)


def run_check(args) -> int:
    """What the CLI's main does with the command's result."""
    try:
        return args.func(args)
    except VisionSynthError as exc:
        return exc.exit_code


def test_a_dataset_that_meets_the_thresholds_is_published(tmp_path, small_inception, capsys):
    dataset, ref, ref_images = make_pair(tmp_path)
    config = write_quality_config(tmp_path, {"fid_proxy_max": 1e6, "kid_proxy_max": 1e6, "max_duplicate_fraction": 0.0,
                                             "max_label_issues": 0, "max_box_size_ks": 1.0})
    assert run_check(check_args(dataset, ref, ref_images, "--config", config)) == 0
    assert "quality gate PASSED" in capsys.readouterr().out

    assert (dataset / "annotations.json").is_file() and (dataset / "dataset_card.md").is_file()
    assert not (dataset / "REJECTED.md").exists() and not (dataset / "annotations.rejected.json").exists()
    quality = json.loads((dataset / "quality.json").read_text())
    assert quality["passed"] is True and quality["state"] == "published" and quality["failed_gates"] == []
    assert {g["gate"] for g in quality["gates"]} == {"fid_proxy_max", "kid_proxy_max", "max_duplicate_fraction",
                                                      "max_label_issues", "max_box_size_ks"}
    fidelity = quality["fidelity"]
    assert fidelity["features"] == "proxy" and "fid" not in fidelity and "kid" not in fidelity
    assert fidelity["fid_proxy"] >= 0 and fidelity["metric_names"]["fid_proxy"] == "FID-proxy"
    html = (dataset / "report.html").read_text()
    assert "FID-proxy" in html and "<th>FID</th>" not in html and ">FID<" not in html
    assert "not FID" in html and "PASSED" in html
    card = (dataset / "dataset_card.md").read_text()
    assert "FID-proxy" in card and "Quality gate: PASSED" in card and "| class1 |" in card


def test_a_dataset_that_breaks_a_threshold_is_rejected_until_a_check_passes(tmp_path, small_inception):
    dataset, ref, ref_images = make_pair(tmp_path)
    split = dataset / "annotations_train.json"
    split.write_text((dataset / "annotations.json").read_text())
    strict = write_quality_config(tmp_path, {"fid_proxy_max": 0.0})
    with pytest.raises(GateFailed) as failed:
        invoke(dataset, ref, ref_images, "--config", strict)
    assert failed.value.exit_code == 3 and "fid_proxy_max" in str(failed.value)

    # nothing looks published
    assert not (dataset / "annotations.json").exists() and not split.exists()
    assert not (dataset / "dataset_card.md").exists()
    assert load_coco(dataset / "annotations.rejected.json", dataset / "images").images  # kept, intact
    assert (dataset / "annotations_train.rejected.json").is_file()
    note = (dataset / "REJECTED.md").read_text()
    assert "fid_proxy_max" in note and "fails by" in note and "FID-proxy" in note and "vision-synth check" in note
    assert "REJECTED" in (dataset / "dataset_card.rejected.md").read_text()
    quality = json.loads((dataset / "quality.json").read_text())
    assert quality["passed"] is False and quality["state"] == "rejected"
    assert quality["failed_gates"] == ["fid_proxy_max"]
    gate = quality["gates"][0]
    assert gate["value"] > 0 and gate["margin"] == pytest.approx(gate["value"]) and gate["threshold"] == 0.0
    assert "REJECTED" in (dataset / "report.html").read_text()

    # checked again with a threshold it meets: published again
    loose = write_quality_config(tmp_path, {"fid_proxy_max": 1e6})
    assert run_check(check_args(dataset, ref, ref_images, "--config", loose)) == 0
    assert (dataset / "annotations.json").is_file() and split.is_file() and (dataset / "dataset_card.md").is_file()
    assert not list(dataset.glob("*.rejected.*")) and not (dataset / "REJECTED.md").exists()


@pytest.mark.slow  # three checks of a dataset (~25 s)
def test_a_planted_duplicate_fails_the_gate_or_is_removed(tmp_path, small_inception):
    samples = synthetic(12, seed=9)
    samples[7] = samples[7].replace(image=samples[2].image.copy(), instances=samples[2].instances)  # image id 8
    dataset, ref, ref_images = make_pair(tmp_path, synthetic_samples_=samples)
    config = write_quality_config(tmp_path, {"max_duplicate_fraction": 0.0})
    assert run_check(check_args(dataset, ref, ref_images, "--config", config)) == 3
    quality = json.loads((dataset / "quality.json").read_text())
    assert quality["duplicates"]["flagged_images"] == [8]
    assert {(p["image_id"], p["other_id"]) for p in quality["duplicates"]["pairs"]} == {(8, 3)}
    assert quality["gates"][0]["value"] == pytest.approx(1 / 12)

    assert run_check(check_args(dataset, ref, ref_images, "--config", config, "--remove-duplicates")) == 0
    published = load_coco(dataset / "annotations.json", dataset / "images")
    assert 8 not in {im["id"] for im in published.images} and len(published.images) == 11
    assert all(a["image_id"] != 8 for a in published.annotations)
    quality = json.loads((dataset / "quality.json").read_text())
    assert quality["duplicates"]["removed_images"] == [8] and quality["duplicates"]["remaining_fraction"] == 0.0


def test_memorisation_flags_a_planted_copy_of_a_reference_image(tmp_path, small_inception):
    reference = real(24, seed=101)
    samples = synthetic(12, seed=10)
    samples[4] = samples[4].replace(image=reference[6].image.copy(), instances=reference[6].instances)
    dataset, ref, ref_images = make_pair(tmp_path, synthetic_samples_=samples)
    config = write_quality_config(tmp_path, {"min_dcr": 0.01})
    assert run_check(check_args(dataset, ref, ref_images, "--config", config)) == 3
    quality = json.loads((dataset / "quality.json").read_text())
    memo = quality["memorisation"]
    # the same pixels in another batch: equal features up to float rounding
    assert memo["copies"] == [4] and memo["min_normalised"] == pytest.approx(0.0, abs=1e-4)
    assert quality["failed_gates"] == ["min_dcr"] and quality["gates"][0]["margin"] == pytest.approx(0.01, abs=1e-4)
    against = [(p["image_id"], p["other_id"]) for p in quality["duplicates"]["pairs"] if p["against"] == "reference"]
    assert (5, 7) in against  # the perceptual hash finds it too


@pytest.mark.slow  # two checks with features (~20 s)
def test_memorisation_is_off_without_a_learned_generator_unless_asked(tmp_path, small_inception):
    dataset, ref, ref_images = make_pair(tmp_path, n_reference=12, n_synthetic=8)
    config = write_quality_config(tmp_path, {})
    assert run_check(check_args(dataset, ref, ref_images, "--config", config)) == 0
    quality = json.loads((dataset / "quality.json").read_text())
    assert quality["memorisation"] is None and any("memorisation" in n for n in quality["notes"])
    assert run_check(check_args(dataset, ref, ref_images, "--config", config, "--memorisation")) == 0
    assert json.loads((dataset / "quality.json").read_text())["memorisation"]["samples"] == 8


def test_bad_input_exits_2_before_anything_is_written(tmp_path, monkeypatch):
    dataset, ref, ref_images = make_pair(tmp_path, n_reference=4, n_synthetic=4)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"fidelity": "proxy", "gate": {"fid_max": 10}}))
    with pytest.raises(ConfigError, match="fid_max needs fidelity.features: inception.*fid_proxy_max"):
        invoke(dataset, ref, ref_images, "--config", str(bad))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert run_check(check_args(dataset, ref, ref_images)) == 2  # the default features need the FID weights
    utility_gate = tmp_path / "utility.yaml"
    utility_gate.write_text(yaml.safe_dump({**FAST, "gate": {"min_utility_delta_ap": 0.0}}))
    with pytest.raises(VisionSynthError, match="--utility"):
        invoke(dataset, ref, ref_images, "--config", str(utility_gate))
    assert sorted(p.name for p in dataset.iterdir()) == ["annotations.json", "images"]


def test_memorisation_turns_itself_on_for_a_learned_generator():
    from vision_synth.quality.check import _learned_generator

    assert _learned_generator([{"generator": "procedural"}, {"generator": "diffusion:inpaint", "model": "m"}])
    assert not _learned_generator([{"generator": "procedural", "model": "scene:surface_defects"}, {}])


def test_inputs_are_checked_before_any_work(tmp_path):
    """What a generate run calls first, so it does not fail after generating."""
    from vision_synth.errors import DatasetError
    from vision_synth.quality.check import check_quality_inputs
    from vision_synth.quality.spec import load_quality_spec

    proxy = load_quality_spec(None, **{"fidelity.features": "proxy"})
    with pytest.raises(VisionSynthError, match="fidelity need.* a reference set.*--reference"):
        check_quality_inputs(proxy)
    with pytest.raises(DatasetError, match="reference annotations not found"):
        check_quality_inputs(proxy, reference=tmp_path / "real.json")
    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump({"reference": "real/annotations.json", "fidelity": "off"}))
    (tmp_path / "real" / "images").mkdir(parents=True)
    (tmp_path / "real" / "annotations.json").write_text("{}")
    inputs = check_quality_inputs(load_quality_spec(config))  # paths relative to the config file
    assert inputs.reference == tmp_path / "real" / "annotations.json"
    assert inputs.reference_images == tmp_path / "real" / "images"
    # the utility's held-out real set: its records and files are read first, not after the fidelity work
    nuclei = Path(__file__).resolve().parents[1] / "assets" / "nuclei_dev"
    utility = load_quality_spec(None, **{"fidelity.features": "off", "utility.enabled": True,
                                         "utility.reference_val": str(nuclei / "val" / "annotations.json")})
    with pytest.raises(DatasetError, match=r"val/annotations.json: images\[0\] \(id 1\): image file .* not found"):
        check_quality_inputs(utility, reference=nuclei / "train_few" / "annotations.json",
                             reference_images=nuclei / "train_few" / "images")


def test_foreign_provenance_fields_are_counted_as_text(tmp_path):
    """A dataset from another tool whose `generator` is an object (an unhashable dict in the provenance
    count: found by tools/fuzz.py) is checked like any other."""
    from helpers import synthetic_samples, write_coco_dataset
    from vision_synth.cli import main

    ann, _ = write_coco_dataset(tmp_path / "ds", synthetic_samples(n_images=3, size=(48, 48)))
    data = json.loads(ann.read_text())
    for image in data["images"]:
        image["synthetic"] = True
    data["images"][0]["generator"] = {"tool": "other", "version": 2}
    ann.write_text(json.dumps(data))
    assert main(["check", str(ann.parent), "--fidelity", "off", "--quiet"]) == 0
    generators = json.loads((ann.parent / "quality.json").read_text())["provenance"]["generators"]
    assert {g["generator"] for g in generators} == {'{"tool": "other", "version": 2}', "test"}
