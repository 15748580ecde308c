"""The utility check validated on real data (tests/assets/nuclei_dev; train on train_few, score on
val, never trained on): a placebo gets no evidence, labels shifted by half their size hurt and are
refused with exit code 3 (half the instances left unlabelled), light copy-paste moves the median
up. (Boxes shifted by half their size measured +0.2% here, no-evidence: see README.) The figures: tools/bench_utility.py
and README. About 15 minutes on 2 CPU cores, hence slow."""

import importlib.util
import json
import subprocess
import sys

import pytest

from helpers import REPO
from vision_synth.detector_spec import TrainConfig
from vision_synth.quality.spec import UtilitySpec
from vision_synth.quality.utility import measure_utility

NUCLEI = REPO / "tests" / "assets" / "nuclei_dev"
pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("bench_utility", REPO / "tools" / "bench_utility.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    bench, work = _bench(), tmp_path_factory.mktemp("candidates")
    train = NUCLEI / "train_few"
    pipeline = bench.placebo_pipeline(work / "placebo_pipeline.yaml")
    placebo = bench.augment(work / "placebo", {"pipeline": str(pipeline), "copies": 48}, train)
    light = bench.augment(work / "light", {"pipeline": str(REPO / "configs" / "pipelines" / "geometric_color.yaml"),
                                           "copies": 48, "copy_paste": {"count": [1, 4]}}, train)
    return {"placebo": placebo, "unlabelled": bench.drop_half(placebo, work / "unlabelled"), "light": light,
            "cache": work / "real_cache"}


def _utility(folder, cache):
    train, val = NUCLEI / "train_few", NUCLEI / "val"
    spec = UtilitySpec()
    return measure_utility(folder / "annotations.json", folder / "images", train / "annotations.json",
                           train / "images", TrainConfig(device="cpu"), spec.seeds,
                           reference_val=val / "annotations.json", reference_val_images=val / "images",
                           max_seeds=spec.max_seeds, cache=cache)


def test_a_placebo_gets_no_evidence(candidates):
    result = _utility(candidates["placebo"], candidates["cache"])
    assert result.verdict == "no-evidence", result.line()
    # the instrument measures on a CPU: real-only median 0.320 and 0.292 on two machines of the same
    # kind (float kernels differ per CPU and training from scratch amplifies it); collapse is < 0.1
    assert result.median("real") >= 0.25, result.line()


def test_light_copy_paste_moves_the_median_up(candidates):
    result = _utility(candidates["light"], candidates["cache"])
    assert result.relative_median_delta > 0, result.line()
    assert result.verdict != "hurts", result.line()


def test_half_the_instances_unlabelled_hurt_and_the_gate_refuses_them(candidates):
    harmful, train, val = candidates["unlabelled"], NUCLEI / "train_few", NUCLEI / "val"
    run = subprocess.run([sys.executable, "-m", "vision_synth.cli", "check", str(harmful),
                          "--reference", str(train / "annotations.json"), "--reference-images", str(train / "images"),
                          "--reference-val", str(val / "annotations.json"), "--reference-val-images", str(val / "images"),
                          "--fidelity", "off", "--require", "no-evidence", "--device", "cpu", "--quiet"],
                         capture_output=True, text=True, timeout=3000)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    utility = json.loads((harmful / "quality.json").read_text())["utility"]
    assert utility["verdict"] == "hurts", utility["interval"]
    assert not (harmful / "annotations.json").exists() and (harmful / "annotations.rejected.json").exists()
