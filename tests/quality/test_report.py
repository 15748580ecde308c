"""The report of a full check (every section: fidelity per class, duplicates, labels, memorisation,
utility) is self-contained and renders in a real browser: headless Chromium draws it, its DOM holds
the tables and data-URI images, and the screenshot is not blank."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from quality_helpers import TEST_INPUT_SIZE, make_pair, synthetic
from vision_synth.quality.spec import load_quality_spec

pytest.importorskip("torch_fidelity", reason="the check's features need torch-fidelity (the fid extra)")
pytestmark = pytest.mark.slow  # one full check with every section, utility training included (~45 s)

CHROMIUM = Path("/usr/bin/chromium")
EXPECTED_TABLES = {
    "gates": ["gate", "metric", "value", "threshold", "result", "margin"],
    "counts": ["class", "reference (real)", "dataset real", "dataset synthetic"],
    "fidelity": ["metric", "value"],
    "class-fidelity": ["class", "FID-proxy", "synthetic crops", "reference crops", "note"],
    "duplicates": ["measure", "value"],
    "distributions": ["class", "statistic", "Wasserstein", "KS", "n synthetic", "n reference"],
    "memorisation": ["measure", "value"],
    "utility": ["arm", "seed", "AP", "AP50", "train s"],
    "provenance": ["item", "value"],
}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """One check with every section on, kept for the tests of this module."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from vision_synth.publish import check_and_publish

    root = tmp_path_factory.mktemp("full")
    samples = synthetic(16, seed=11)
    samples[9] = samples[9].replace(image=samples[1].image.copy(), instances=samples[1].instances)  # a duplicate
    dataset, ref, ref_images = make_pair(root, n_reference=20, synthetic_samples_=samples)
    spec = load_quality_spec(None, **{
        "fidelity.features": "proxy", "fidelity.min_crops_per_class": 3, "fidelity.kid_subsets": 5,
        "fidelity.pr_min_samples": 10, "memorisation.enabled": True, "utility.enabled": True,
        "utility.train": {"steps": 2, "batch_size": 2, "image_size": 64, "device": "cpu"},
        "labels.min_area": 1, "labels.min_side": 1, "sample_grid": 8,
        "gate.fid_proxy_max": 1e6, "gate.max_duplicate_fraction": 0.5, "gate.min_dcr": 0.0,
        "gate.min_utility_delta_ap": -1.0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", TEST_INPUT_SIZE)
        report = check_and_publish(dataset, spec, reference=ref, reference_images=ref_images, progress=False)
    return report


def test_quality_json_holds_every_section(full_report):
    assert full_report.passed
    data = json.loads((full_report.dataset_dir / "quality.json").read_text())
    assert data["passed"] is True
    for section in ("fidelity", "duplicates", "labels", "memorisation", "utility", "provenance", "config"):
        assert data[section], section
    assert set(data["fidelity"]["per_class"]) == {"class1", "class2", "class3"}
    assert data["fidelity"]["precision_proxy"] is not None
    assert data["duplicates"]["flagged_images"] == [10]
    utility = data["utility"]
    assert {r["arm"] for r in utility["runs"]} == {"real", "real+synthetic"}
    assert all(np.isfinite(r["ap"]) for r in utility["runs"])
    assert data["provenance"]["packages"]["torch"] and data["provenance"]["generators"][0]["generator"] == "procedural"
    assert data["provenance"]["features"]["kind"] == "proxy"


def test_the_card_names_provenance_counts_and_figures(full_report):
    card = (full_report.dataset_dir / "dataset_card.md").read_text()
    for text in ("## Provenance", "package torch", "## Instances per class", "| class | reference (real) |",
                 "## Quality gate", "FID-proxy", "## Duplicates", "## Memorisation", "## Utility", "report.html",
                 "```yaml"):
        assert text in card, text


def test_report_is_self_contained(full_report):
    html = (full_report.dataset_dir / "report.html").read_text()
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing loaded from elsewhere
    assert html.count('src="data:image/png;base64,') >= 6


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium package "
                                                  "(apt-get install -y chromium) to run the browser test")
def test_report_renders_in_headless_chromium(full_report, tmp_path):
    report = full_report.dataset_dir / "report.html"
    shot = tmp_path / "report.png"
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,2400"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert "<title>PASSED" in page
    assert len(re.findall(r'<circle class="point"', page)) == 2  # utility: one seed, both arms
    images = re.findall(r'<img[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)
    assert len(images) >= 6
    for cls, headers in EXPECTED_TABLES.items():
        table = re.search(rf'<table class="{cls}"><thead><tr>(.*?)</tr></thead>', page)
        assert table, f"table {cls} missing"
        assert re.findall(r"<th>(.*?)</th>", table.group(1)) == headers, cls

    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    done = subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    import cv2

    pixels = cv2.imread(str(shot))
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 20  # not a blank page
    assert (pixels.reshape(-1, 3).min(axis=1) < 128).mean() > 0.01  # text, tables and figures drawn
