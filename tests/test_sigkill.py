"""SIGKILL during a writing command: the output is absent or complete, the rerun succeeds and cleans
up the killed run's staging folder (files.py `staged_output`, used by every command that
writes a new output folder)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import synthetic_samples, write_coco_dataset
from vision_synth.cli import main
from vision_synth.coco.export import export_dataset
from vision_synth.files import remove_stale_stages, staged_output, write_atomic
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


# ------------------------------------------------------------------ check and defects train, killed
def _pause_hook(folder, target: str) -> str:
    """A sitecustomize hook for a child run with $VS_CALLS set: every call of `target` (module:attribute)
    is made, its arguments and result are logged to $VS_CALLS (one line a call), then it waits (at
    most $VS_PAUSE s) until $VS_CALLS.go holds at least the number of its calls so far, so that a
    kill lands while what the call made exists (a temp file, a checkpoint begun), and a call the
    parent does not want to kill at is let go at once."""
    module, name = target.split(":")
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import os, time\n"
        "if os.environ.get('VS_CALLS'):\n"
        f"    import {module} as m\n"
        f"    original = m.{name}\n"
        "    made = [0]\n"
        "    def released():\n"
        "        try:\n"
        "            with open(os.environ['VS_CALLS'] + '.go') as go:\n"
        "                return int(go.read())\n"
        "        except (OSError, ValueError):\n"
        "            return 0\n"
        "    def paused(*args, **kwargs):\n"
        "        result = original(*args, **kwargs)\n"
        "        with open(os.environ['VS_CALLS'], 'a') as log:\n"
        "            log.write(repr((args, result)).replace(chr(10), ' ') + chr(10))\n"
        "        made[0] += 1\n"
        "        deadline = time.monotonic() + float(os.environ['VS_PAUSE'])\n"
        "        while time.monotonic() < deadline and released() < made[0]:\n"
        "            time.sleep(0.01)\n"
        "        return result\n"
        f"    m.{name} = paused\n")
    return str(folder)


def _kill_when(argv, tmp_path, target: str, ready, pause: float = 30.0) -> int:
    """Run `vision-synth argv` in a child that holds after each call of `target`; SIGKILL it once
    `ready(calls)` (the lines logged so far) is true, else let it go on to its next call. Returns
    the child's pid."""
    calls = tmp_path / "calls.log"
    go = tmp_path / "calls.log.go"
    calls.unlink(missing_ok=True)
    go.unlink(missing_ok=True)
    hook = _pause_hook(tmp_path / "pause_hook", target)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([hook, *sys.path]), "VS_CALLS": str(calls),
           "VS_PAUSE": str(pause)}
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", *map(str, argv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    released = 0
    while time.time() < deadline and proc.poll() is None:
        lines = (calls.read_text() if calls.exists() else "").split("\n")[:-1]  # whole lines: the last may be half written
        if ready(lines):
            break
        if len(lines) > released:  # not this call: let the child go on (the count written whole)
            released = len(lines)
            write_atomic(go, str(released))
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def _stages(folder) -> list:
    return sorted(p for p in folder.rglob(".*") if ".partial-" in p.name or ".old-" in p.name)


# the quality configs of tests/test_publish.py: a check that passes (and removes a planted duplicate
# through the publisher) and one that rejects (every instance is under the label minimum)
CHECKS = {
    "passes": {"fidelity": "off", "labels": {"min_area": 1, "min_side": 1}, "sample_grid": 0,
               "duplicates": {"action": "remove"}, "gate": {"max_duplicate_fraction": 0.0}},
    "rejects": {"fidelity": "off", "labels": {"min_area": 100000}, "sample_grid": 0},
}
TIMED = ("quality.json", "report.html", "dataset_card.md", "dataset_card.rejected.md", "REJECTED.md")


def _dataset_files(folder) -> dict:
    """name → bytes of every file a dataset folder shows (the timed reports by their verdict or last line)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts):
            data = p.read_bytes()
            if p.name == "quality.json":
                data = json.loads(data)["passed"]  # whole JSON, and its verdict
            elif p.name in TIMED:
                data = data.rstrip().splitlines()[-1]  # written to its end
            out[str(p.relative_to(folder))] = data
    return out


@pytest.mark.parametrize("verdict, killed_in", [
    ("passes", "quality.json"),
    pytest.param("passes", "staging/annotations.json", marks=pytest.mark.slow),
    pytest.param("passes", "report.html", marks=pytest.mark.slow),
    pytest.param("passes", "dataset_card.md", marks=pytest.mark.slow),
    pytest.param("rejects", "REJECTED.md", marks=pytest.mark.slow),
    pytest.param("rejects", "quality.json", marks=pytest.mark.slow),
    pytest.param("rejects", "dataset_card.rejected.md", marks=pytest.mark.slow),
])
def test_sigkill_during_check_then_rerun(tmp_path, verdict, killed_in):
    """`check` killed while it writes one of its files (the temp file made, not yet renamed): every
    file the folder shows is the one from before the check or the finished one, never half of
    either; the rerun reaches the verdict and files of an uninterrupted check and removes the
    killed run's temp file."""
    import shutil

    import yaml

    from vision_synth.types import Provenance

    made = Provenance("procedural", synthetic=True)
    samples = [s.replace(provenance=made) for s in synthetic_samples(8, (48, 48), seed=4)]
    samples[5] = samples[5].replace(image=samples[1].image.copy(), instances=samples[1].instances)  # a duplicate
    data = write_coco_dataset(tmp_path / "data", samples)[0].parent
    reference = tmp_path / "reference"
    shutil.copytree(data, reference)
    config = tmp_path / "quality.yaml"
    config.write_text(yaml.safe_dump(CHECKS[verdict]))
    check = lambda folder: ["check", str(folder), "--config", str(config), "--quiet"]  # noqa: E731
    code = 0 if verdict == "passes" else 3
    assert main(check(reference)) == code
    before, finished = _dataset_files(data), _dataset_files(reference)
    assert before != finished

    name = Path(killed_in).name
    writing = lambda calls: any(f".{name}.partial-" in c for c in calls)  # noqa: E731
    pid = _kill_when(check(data), tmp_path, "vision_synth.files:_create_beside", writing)
    left = _stages(data)
    assert [p.name.startswith(f".{name}.partial-{pid}-") for p in left] == [True], left  # killed mid-write
    for rel, content in _dataset_files(data).items():
        assert content in (before.get(rel), finished.get(rel)), f"{rel} is neither as before nor as finished"

    assert main(check(data)) == code  # the rerun
    assert _dataset_files(data) == finished
    assert _stages(data) == [], "the rerun removes what the killed check left"


@pytest.fixture(scope="module")
def trained_reference(tmp_path_factory):
    """A dataset for `defects train` and the model folder of an uninterrupted run on it."""
    root = tmp_path_factory.mktemp("defects")
    ann, images = write_coco_dataset(root / "data", synthetic_samples(n_images=8, size=(48, 48)))
    argv = ["defects", "train", "--coco", str(ann), "--images", str(images), "--category", "class1", "--steps", "6",
            "--checkpoint-every", "2", "--size", "16", "--batch-size", "2", "--quiet"]
    assert main([*argv, "--out", str(root / "reference")]) == 0
    return argv, root / "reference"


def _complete_checkpoints(model) -> list[int]:
    """Steps of the checkpoint folders, each asserted whole (state, optimizer, unet weights that load)."""
    from safetensors.torch import load_file

    steps = []
    for folder in sorted(model.glob("checkpoint-*")):
        state = json.loads((folder / "state.json").read_text())
        assert (folder / "optimizer.pt").stat().st_size > 0 and (folder / "unet" / "config.json").is_file()
        assert load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
        steps.append(state["step"])
    return steps


def _model_files(model) -> dict:
    return {str(p.relative_to(model)): p.read_bytes() for p in sorted(model.rglob("*"))
            if p.is_file() and not p.relative_to(model).parts[0].startswith(("checkpoint-", "."))}


@pytest.mark.slow  # a child that imports torch and diffusers, then trains: about a minute on 2 busy cores
@pytest.mark.parametrize("killed_in", ["checkpoint", "between checkpoints", "final model"])
def test_sigkill_during_defects_train_then_resume(tmp_path, trained_reference, capsys, killed_in):
    """`defects train` killed while saving a checkpoint, between checkpoints, or while saving the final
    model: the model folder holds only whole checkpoints and no final model until it is whole; the
    rerun resumes from the last checkpoint, ends with the very model of an uninterrupted run, and
    removes what the killed run left."""
    from vision_synth.rare.learned import META, load_model

    argv, reference = trained_reference
    model = tmp_path / "model"
    if killed_in == "checkpoint":  # paused after the optimizer of checkpoint 4 is written, before its state.json
        target, ready = "torch:save", lambda calls: any("checkpoint-000004" in c for c in calls)
    elif killed_in == "between checkpoints":  # each step's batch paused, killed in a step after checkpoint 2
        target = "vision_synth.rare.learned:augment_batch"
        ready = lambda calls: len(calls) >= 3 and (model / "checkpoint-000002").is_dir()  # noqa: E731
    else:  # paused after the crops are written into the final model's stage
        target, ready = "numpy:savez_compressed", lambda calls: len(calls) >= 1
    pid = _kill_when([*argv, "--out", model], tmp_path, target, ready)

    steps = _complete_checkpoints(model)
    assert steps and not (model / META).exists(), "no final model before it is whole"
    left = _stages(model)
    if killed_in != "between checkpoints":
        assert left and all(f".partial-{pid}-" in p.name for p in left), left
    capsys.readouterr()
    assert main([*argv, "--out", str(model)]) == 0  # the rerun
    assert f"resumed from step {max(steps)}" in capsys.readouterr().out
    assert _stages(model) == []
    assert _model_files(model) == _model_files(reference)  # unet, scheduler, crops and META, byte for byte
    assert load_model(model).meta["steps"] == 6
    assert _complete_checkpoints(model) == [4, 6]
