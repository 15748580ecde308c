"""The publisher (vision_synth/publish.py) runs after the gate: a generate run whose gate fails never
shows annotations.json, even for a moment; a process killed while checking leaves nothing that
looks published, and a rerun reaches the same verdict and the same files as an uninterrupted run."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import small_config, synthetic_samples, write_coco_dataset
from vision_synth.publish import ANNOTATIONS, REJECTED_ANNOTATIONS, REJECTED_NOTE, STAGING

# every instance is "too small" for this minimum: the default gate max_label_issues: 0 fails
FAILING = {"fidelity": "off", "labels": {"min_area": 100000}, "sample_grid": 0}
PASSING = {"fidelity": "off", "labels": {"min_area": 1, "min_side": 1}, "sample_grid": 0,
           "duplicates": {"action": "remove"}, "gate": {"max_duplicate_fraction": 0.0}}
# runs in the child process: after the check has measured, leave a marker and wait (to be polled or killed)
HOOK = """
import os, time
if os.environ.get("VS_TEST_MARKER"):
    import vision_synth.quality.check as check
    measure = check.measure_quality
    def paused(*args, **kwargs):
        report = measure(*args, **kwargs)
        open(os.environ["VS_TEST_MARKER"], "w").write("measured")
        time.sleep(float(os.environ["VS_TEST_SLEEP"]))
        return report
    check.measure_quality = paused
"""


def _env(tmp_path, marker: Path | None = None, sleep: float = 0.0) -> dict:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    if marker is not None:
        env.update(VS_TEST_MARKER=str(marker), VS_TEST_SLEEP=str(sleep))
    return env


def _cli(*args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vision_synth", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _files(folder: Path) -> dict[str, str]:
    """Every published file: name → sha256 (quality.json, report and card carry times: compared apart)."""
    timed = {"quality.json", "report.html", "dataset_card.md", "dataset_card.rejected.md", "REJECTED.md"}
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.name not in timed else "")
            for p in sorted(folder.rglob("*")) if p.is_file() and ".vision_synth" not in p.parts}


def _verdict(folder: Path) -> dict:
    data = json.loads((folder / "quality.json").read_text())
    return {"passed": data["passed"], "gates": [(g["gate"], g["value"], g["passed"]) for g in data["gates"]],
            "duplicates": data["duplicates"]["removed_images"], "labels": data["labels"]["issues"]}


@pytest.fixture
def failing_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(small_config(num_images=6, quality=FAILING)))
    return path


def test_a_generate_whose_gate_fails_never_shows_annotations_json(tmp_path, failing_config):
    out = tmp_path / "out"
    marker = tmp_path / "measured"
    proc = _cli("generate", str(failing_config), "--out", str(out), "--quiet", env=_env(tmp_path, marker, 1.0))
    seen_published = seen_staging = seen_measured = False
    while proc.poll() is None:  # watch the folder for the whole run, check included
        seen_published |= (out / ANNOTATIONS).exists()
        seen_staging |= (out / STAGING).exists()
        seen_measured |= marker.exists()
        time.sleep(0.002)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 3, stderr[-2000:]
    assert seen_staging and seen_measured, "the poll watched the run while the merged annotations awaited the gate"
    assert not seen_published and not (out / ANNOTATIONS).exists()
    assert (out / REJECTED_ANNOTATIONS).is_file() and (out / REJECTED_NOTE).is_file()
    assert not (out / STAGING).exists() and not (out / "dataset_card.md").exists()
    assert json.loads((out / "quality.json").read_text())["failed_gates"] == ["max_label_issues"]


def _kill_while_checking(tmp_path, args: list[str]) -> None:
    marker = tmp_path / "measured"
    marker.unlink(missing_ok=True)
    proc = _cli(*args, env=_env(tmp_path, marker, 60.0))
    deadline = time.time() + 180
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_generate_killed_in_its_check_resumes_to_the_same_verdict_and_files(tmp_path, failing_config):
    killed, full = tmp_path / "killed", tmp_path / "full"
    _kill_while_checking(tmp_path, ["generate", str(failing_config), "--out", str(killed), "--quiet"])
    assert not (killed / ANNOTATIONS).exists() and not (killed / REJECTED_ANNOTATIONS).exists()
    assert not (killed / "quality.json").exists()  # killed before the publisher: nothing written
    rerun = _cli("generate", str(failing_config), "--out", str(killed), "--quiet", env=_env(tmp_path))
    assert rerun.wait() == 3, rerun.communicate()[1][-2000:]
    whole = _cli("generate", str(failing_config), "--out", str(full), "--quiet", env=_env(tmp_path))
    assert whole.wait() == 3
    assert _files(killed) == _files(full) and _verdict(killed) == _verdict(full)
    assert (killed / REJECTED_ANNOTATIONS).read_bytes() == (full / REJECTED_ANNOTATIONS).read_bytes()


def test_a_check_killed_midway_leaves_the_dataset_as_it_was_and_reruns_the_same(tmp_path):
    """`check --remove-duplicates` on a published dataset with a planted duplicate: killed after it has
    measured, the dataset is untouched (no in-place rewrite); the rerun removes the duplicate through
    the publisher exactly as an uninterrupted check does."""
    from vision_synth.types import Provenance

    made = Provenance("procedural", synthetic=True)
    samples = [s.replace(provenance=made) for s in synthetic_samples(8, (64, 64), seed=4)]
    samples[5] = samples[5].replace(image=samples[1].image.copy(), instances=samples[1].instances)  # image id 6
    write_coco_dataset(tmp_path / "killed", samples)
    shutil.copytree(tmp_path / "killed", tmp_path / "full")
    before = (tmp_path / "killed" / ANNOTATIONS).read_bytes()
    config = tmp_path / "quality.yaml"
    config.write_text(yaml.safe_dump(PASSING))
    check = lambda name: ["check", str(tmp_path / name), "--config", str(config), "--quiet"]  # noqa: E731

    _kill_while_checking(tmp_path, check("killed"))
    assert (tmp_path / "killed" / ANNOTATIONS).read_bytes() == before
    assert not (tmp_path / "killed" / "quality.json").exists()
    assert _cli(*check("killed"), env=_env(tmp_path)).wait() == 0
    assert _cli(*check("full"), env=_env(tmp_path)).wait() == 0
    assert _verdict(tmp_path / "killed") == _verdict(tmp_path / "full")
    assert _verdict(tmp_path / "full")["duplicates"] == [6]
    assert _files(tmp_path / "killed") == _files(tmp_path / "full")
    published = json.loads((tmp_path / "killed" / ANNOTATIONS).read_text())
    assert 6 not in {im["id"] for im in published["images"]} and len(published["images"]) == 7
