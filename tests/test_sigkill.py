"""SIGKILL during a writing command: the output is absent or complete, the rerun succeeds and cleans
up the killed run's staging folder (files.py `staged_output`, used by every command that
writes a new output folder)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import synthetic_samples, write_coco_dataset
from vision_synth.cli import main
from vision_synth.coco.export import export_dataset
from vision_synth.files import remove_stale_stages, staged_output
from vision_synth.errors import DatasetError


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftovers(folder, out):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{out.name}."))


def test_stages_of_dead_runs_are_removed_and_those_of_live_runs_kept(tmp_path):
    out, gone = tmp_path / "out", _dead_pid()
    dead = tmp_path / f".out.partial-{gone}-0a1b2c3d"
    replaced = tmp_path / f".out.old-{gone}-0a1b2c3d"
    live = tmp_path / f".out.partial-{os.getppid()}-0a1b2c3d"  # our parent: alive
    other = tmp_path / f".outer.partial-{gone}-0a1b2c3d"  # another output's
    for stage in (dead, replaced, live, other):
        (stage / "images").mkdir(parents=True)
    with staged_output(out) as stage:
        (stage / "annotations.json").write_text("{}")
        assert stage.name.startswith(f".out.partial-{os.getpid()}-")
    assert (out / "annotations.json").read_text() == "{}"
    assert not dead.exists() and not replaced.exists()
    assert live.exists() and other.exists()
    assert remove_stale_stages(out) == []


def test_a_failed_build_leaves_the_old_output_and_no_stage(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotations.json").write_text("old")
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        with staged_output(out):
            pass
    with pytest.raises(RuntimeError):
        with staged_output(out, replace=True) as stage:
            (stage / "annotations.json").write_text("new")
            raise RuntimeError("failed half-way")
    assert (out / "annotations.json").read_text() == "old"
    with staged_output(out, replace=True) as stage:
        (stage / "annotations.json").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json"]
    assert (out / "annotations.json").read_text() == "new"
    assert _leftovers(tmp_path, out) == []


# ------------------------------------------------------------------------------- killed commands
# each command, slowed by a sitecustomize hook (a sleep in the one call it makes per image) so that
# the kill lands mid-run: (argv after the dataset folder, module attribute to slow, stage file to
# wait for)
COMMANDS = {
    "augment": (lambda d, out: ["augment", "--coco", d / "annotations.json", "--images", d / "images", "--out", out, "--copy-paste",
                                "--format", "png"],
                "vision_synth.augment.dataset:write_image", "images/*.png"),
    "export": (lambda d, out: ["export", d, "--format", "yolo", "--out", out],
               "vision_synth.coco.export:place_file", "images/*.png"),
    "merge": (lambda d, out: ["merge", d, d, "--out", out], "vision_synth.coco.merge:place_file", "images/*.png"),
    "augment-rare": (lambda d, out: ["augment-rare", "--coco", d / "annotations.json", "--images", d / "images",
                                     "--out", out],
                     "os:link", "images/*.png"),  # each real image is linked into OUT/images
}


def _slow_hook(folder, target: str) -> str:
    module, name = target.split(":")
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import time\n"
        f"import {module} as m\n"
        f"original = m.{name}\n"
        "def slow(*args, **kwargs):\n"
        "    time.sleep(0.3)\n"
        "    return original(*args, **kwargs)\n"
        f"m.{name} = slow\n")
    return str(folder)


# 2 s each on an idle machine, 10-25 s on 2 busy cores (a subprocess, then two runs): augment in the
# fast suite, the others slow-marked
@pytest.mark.parametrize("command", [c if c == "augment" else pytest.param(c, marks=pytest.mark.slow)
                                     for c in COMMANDS])
def test_sigkill_mid_run_then_rerun(tmp_path, command):
    argv_of, target, staged_files = COMMANDS[command]
    data = write_coco_dataset(tmp_path / "data", synthetic_samples(n_images=12, size=(48, 48)))[0].parent
    out, reference = tmp_path / "out", tmp_path / "reference"
    argv = [str(a) for a in argv_of(data, out)] + ["--quiet"]
    hook = _slow_hook(tmp_path / "hook", target)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([hook, *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stage = tmp_path / f".out.partial-{proc.pid}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        stages = list(tmp_path.glob(".out.partial-*"))
        if stages and len(list(stages[0].glob(staged_files))) >= 3:
            stage = stages[0]
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed run leaves no output"
    assert stage.is_dir() and stage.name.startswith(f".out.partial-{proc.pid}-"), "(the leftover to clean)"

    assert main(argv) == 0  # the rerun
    assert not stage.exists()
    assert _leftovers(tmp_path, out) == []
    assert main([str(a) for a in argv_of(data, reference)] + ["--quiet"]) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "data.yaml":  # (data.yaml names its own folder)
            assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel
    if command == "augment":
        assert len(json.loads((out / "annotations.json").read_text())["images"]) == 12


def test_split_files_of_different_runs_are_refused_by_export(tmp_path):
    data = write_coco_dataset(tmp_path / "data", synthetic_samples(n_images=10))[0].parent
    split = ["split", str(data), "--ratios", "0.6,0.4", "--allow-synthetic-eval"]
    assert main([*split, "--seed", "0"]) == 0
    old_val = (data / "annotations_val.json").read_bytes()
    assert main([*split, "--seed", "1", "--overwrite"]) == 0
    (data / "annotations_val.json").write_bytes(old_val)  # as a run killed between its two renames leaves it
    with pytest.raises(DatasetError, match=r"split files come from different runs of `vision-synth split` "
                                           r"\(train [0-9a-f]{16}, val [0-9a-f]{16}\); run it again with --overwrite"):
        export_dataset(data, tmp_path / "yolo", "yolo")
    assert main([*split, "--seed", "1", "--overwrite"]) == 0
    assert main(["export", str(data), "--format", "yolo", "--out", str(tmp_path / "yolo"), "--quiet"]) == 0


@pytest.mark.slow  # a subprocess on 2 busy cores
def test_sigkill_during_split_then_rerun(tmp_path):
    data = write_coco_dataset(tmp_path / "data", synthetic_samples(n_images=10))[0].parent
    reference = write_coco_dataset(tmp_path / "reference", synthetic_samples(n_images=10))[0].parent
    split = ["split", "--ratios", "0.6,0.2,0.2", "--allow-synthetic-eval", "--seed", "3"]
    hook = _slow_hook(tmp_path / "hook", "vision_synth.coco.split:subset")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([hook, *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", split[0], str(data), *split[1:]], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(data.glob(".annotations_*.partial-*")):
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(data.glob(".annotations_*.partial-*")), "(the leftover to clean)"
    assert not list(data.glob("annotations_*.json")), "no split file until all are written"
    assert main([split[0], str(data), *split[1:]]) == 0
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == []
    assert main([split[0], str(reference), *split[1:]]) == 0
    for name in ("train", "val", "test"):
        assert (data / f"annotations_{name}.json").read_bytes() == (reference / f"annotations_{name}.json").read_bytes()
