"""The gate: one table read by spec validation, check and report; the utility verdict gate
(`utility.require`); a gate that could not be measured fails. The utility result here is a small
stand-in with the interface of vision_synth.quality.utility.UtilityResult, built from fixed numbers,
so these tests decide the wiring, not the detector."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from quality_helpers import make_pair
from vision_synth.publish import check_and_publish
from vision_synth.quality import gate as gates
from vision_synth.quality.spec import GateSpec, QualitySpec, load_quality_spec

CHROMIUM = Path("/usr/bin/chromium")
SEEDS = [0, 1, 2, 3, 4]


class FakeUtility:
    """Per-seed AP of both arms, a verdict and its interval: what the report and the gate read."""

    def __init__(self, real, mixed, verdict, interval, collapsed=None):
        self.real, self.mixed = list(real), list(mixed)
        self.verdict, self.interval = verdict, tuple(interval)
        self.relative_median_delta = float(np.median(mixed) / np.median(real) - 1)
        self.collapsed = collapsed or {"real": [], "real+synthetic": []}
        self.delta_ap = float(np.mean(mixed) - np.mean(real))

    def to_json(self):
        arm = lambda aps, name: {"ap": aps, "ap50": [2 * a for a in aps], "median_ap": float(np.median(aps)),  # noqa
                                 "mean_ap": float(np.mean(aps)), "median_ap50": float(2 * np.median(aps)),
                                 "mean_ap50": float(2 * np.mean(aps)), "collapsed_seeds": self.collapsed[name]}
        runs = [{"arm": a, "seed": s, "ap": ap, "ap50": 2 * ap, "train_seconds": 1.0}
                for s, r, m in zip(SEEDS, self.real, self.mixed) for a, ap in (("real", r), ("real+synthetic", m))]
        return {"train": {"model": "fcos_small", "steps": 3, "batch_size": 4, "image_size": 64}, "seeds": SEEDS,
                "real_share": 0.5, "images": {"real_train": 8, "synthetic": 20, "val": 4}, "runs": runs,
                "arms": {"real": arm(self.real, "real"), "real+synthetic": arm(self.mixed, "real+synthetic")},
                "paired": [{"seed": s, "delta_ap": m - r, "delta_ap50": 2 * (m - r)}
                           for s, r, m in zip(SEEDS, self.real, self.mixed)],
                "relative_median_delta": self.relative_median_delta, "interval": list(self.interval),
                "confidence": 0.95, "verdict": self.verdict, "seconds": 5.0}


HELPS = FakeUtility([0.40, 0.42, 0.38, 0.45, 0.41], [0.47, 0.48, 0.44, 0.50, 0.46], "helps", (0.06, 0.22))
PLACEBO = FakeUtility([0.40, 0.42, 0.38, 0.45, 0.41], [0.43, 0.40, 0.39, 0.44, 0.42], "no-evidence", (-0.05, 0.08))
HURTS = FakeUtility([0.40, 0.42, 0.05, 0.45, 0.41], [0.15, 0.14, 0.16, 0.12, 0.18], "hurts", (-0.75, -0.55),
                    {"real": [2], "real+synthetic": []})


class Measured:
    def __init__(self, utility):
        self.utility, self.fidelity, self.memorisation = utility, None, None


def _spec(require=None, **gate):
    spec = QualitySpec(gate=GateSpec(**{"max_label_issues": None, **gate}))
    if require is not None:  # utility.require (a UtilitySpec key): set on the validated spec
        spec = spec.model_copy(update={"utility": spec.utility.model_copy(update={"require": require})})
    return spec


@pytest.mark.parametrize("require, utility, passed", [
    ("helps", HELPS, True), ("helps", PLACEBO, False), ("helps", HURTS, False),
    ("no-evidence", HELPS, True), ("no-evidence", PLACEBO, True), ("no-evidence", HURTS, False),
    ("helps", None, False), ("no-evidence", None, False),  # required but not measured: fails
])
def test_utility_require_accepts_only_the_verdicts_it_names(require, utility, passed):
    [result] = gates.evaluate(_spec(require), Measured(utility), proxy=False)
    assert result.name == "utility" and result.kind == "verdict" and result.passed is passed
    if utility is None:
        assert not result.measured and "not measured" in result.message()
    else:
        assert result.value == utility.verdict and "interval" in result.message()


def test_the_delta_gate_still_works_and_fails_unmeasured():
    [ok] = gates.evaluate(_spec(min_utility_delta_ap=0.0), Measured(HELPS), proxy=False)
    [bad] = gates.evaluate(_spec(min_utility_delta_ap=0.0), Measured(HURTS), proxy=False)
    [none] = gates.evaluate(_spec(min_utility_delta_ap=0.0), Measured(None), proxy=False)
    assert ok.passed and ok.value == pytest.approx(HELPS.delta_ap)
    assert not bad.passed and bad.margin == pytest.approx(-HURTS.delta_ap)
    assert not none.passed and not none.measured and none.to_json()["measured"] is False


def test_one_table_holds_every_gate_and_spec_validation_reads_it():
    assert {g.key for g in gates.GATES if g.key.startswith("gate.")} == {f"gate.{k}" for k in GateSpec.model_fields}
    assert gates.BY_NAME["utility"].key == "utility.require"
    for gate in gates.GATES:  # every `needs` is one validation knows
        assert set(gate.needs) <= {gates.NEEDS_INCEPTION, gates.NEEDS_PROXY, gates.NEEDS_FEATURES,
                                   gates.NEEDS_PER_CLASS, gates.NEEDS_MEMORISATION, gates.NEEDS_UTILITY}
    from vision_synth.errors import ConfigError

    with pytest.raises(ConfigError, match="gate.min_recall needs fidelity.features: inception or proxy"):
        load_quality_spec(None, **{"fidelity.features": "off", "gate.min_recall": 0.5})
    with pytest.raises(ConfigError, match="gate.class_fid_max needs fidelity.per_class: true"):
        load_quality_spec(None, **{"fidelity.features": "proxy", "fidelity.per_class": False,
                                   "gate.class_fid_max": 5})


def test_fidelity_off_as_yaml_reads_it_and_a_flag_into_a_non_mapping_is_one_line(tmp_path):
    """YAML reads an unquoted `off` as false; a flag (--steps) setting a key inside a section the file
    gives as a number was an AttributeError (found by tools/fuzz.py)."""
    from vision_synth.errors import ConfigError

    path = tmp_path / "quality.yaml"
    path.write_text("fidelity: off\nlabels: {min_area: 2}\n")
    assert load_quality_spec(path).fidelity.features == "off"
    path.write_text("fidelity: {features: off}\n")
    assert load_quality_spec(path, **{"fidelity.features": None}).fidelity.features == "off"
    path.write_text("fidelity: off\nutility: 5\n")
    with pytest.raises(ConfigError, match=r"quality.yaml: utility: expected a mapping \(a command-line flag sets "
                                          r"utility.train.steps in it\)"):
        load_quality_spec(path, **{"utility.train.steps": 3})


def _checked(tmp_path, monkeypatch, utility, require):
    """A real check of a small dataset (fidelity off) whose utility step returns `utility`."""
    import vision_synth.quality.utility as utility_module

    monkeypatch.setattr(utility_module, "measure_utility", lambda *a, **k: utility)
    dataset, ref, ref_images = make_pair(tmp_path, n_reference=8, n_synthetic=6)
    spec = _spec(require).model_copy(update={"fidelity": QualitySpec().fidelity.model_copy(
        update={"features": "off"}), "sample_grid": 2})
    report = check_and_publish(dataset, spec, reference=ref, reference_images=ref_images, progress=False)
    return report, dataset


def test_a_check_whose_synthetic_data_hurts_is_rejected_and_one_that_helps_published(tmp_path, monkeypatch):
    report, dataset = _checked(tmp_path / "hurts", monkeypatch, HURTS, "no-evidence")
    assert not report.passed and report.failed[0].name == "utility"
    assert not (dataset / "annotations.json").exists() and (dataset / "annotations.rejected.json").is_file()
    assert "utility" in (dataset / "REJECTED.md").read_text()
    data = json.loads((dataset / "quality.json").read_text())
    assert data["utility"]["verdict"] == "hurts" and data["failed_gates"] == ["utility"]
    with pytest.raises(gates.GateFailed) as failed:
        report.raise_if_failed()
    assert failed.value.exit_code == 3

    report, dataset = _checked(tmp_path / "helps", monkeypatch, HELPS, "helps")
    assert report.passed and (dataset / "annotations.json").is_file()


def test_the_report_draws_every_seed_of_both_arms_joined_by_pair(tmp_path, monkeypatch):
    report, dataset = _checked(tmp_path, monkeypatch, HURTS, "helps")
    html = (dataset / "report.html").read_text()
    svg = re.search(r'<svg class="utility-plot".*?</svg>', html, re.S).group(0)
    points = re.findall(r'<circle class="point" data-arm="([^"]+)" data-seed="(\d+)"', svg)
    assert sorted(points) == sorted((arm, str(s)) for arm in ("real", "real+synthetic") for s in SEEDS)
    assert len(re.findall(r'<line class="pair" data-seed="\d+"', svg)) == len(SEEDS)
    assert 'class="interval"' in svg and "verdict: hurts" in svg and "[-75.0%, -55.0%]" in svg
    # the collapsed seed of the real arm is drawn hollow
    assert re.search(r'data-arm="real" data-seed="2"[^>]*fill="white"', svg)
    assert "hurts" in (dataset / "dataset_card.rejected.md").read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium")
def test_the_utility_picture_renders_in_headless_chromium(tmp_path, monkeypatch):
    report, dataset = _checked(tmp_path, monkeypatch, HELPS, "helps")
    shot = tmp_path / "utility.png"
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1000,3000"]
    dom = subprocess.run([*flags, "--dump-dom", (dataset / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<circle class="point"', dom.stdout)) == 2 * len(SEEDS)
    assert "verdict: helps" in dom.stdout
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    done = subprocess.run([*flags, f"--screenshot={shot}", (dataset / "report.html").as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    import cv2

    pixels = cv2.imread(str(shot))
    # the picture's green pair lines (all five seeds improve) are drawn: the SVG rendered, not just parsed
    green = (pixels[..., 1] > 140) & (pixels[..., 2] < 90) & (pixels[..., 0] < 90)
    assert green.sum() > 200
