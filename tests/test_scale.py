"""Scale-out: several processes through accelerate, kill-and-resume, streaming merge."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import small_config
from test_generate import digest
from vision_synth.coco.writer import ShardWriter, done_indices, sample_records, write_annotations
from vision_synth.cli import main


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vision_synth", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(small_config(num_images=12, image={"width": 80, "height": 64, "format": "jpeg"})))
    return path


@pytest.fixture(scope="module")
def single_run(config_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "out"
    assert main(["generate", str(config_path), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow  # several processes through accelerate
@pytest.mark.parametrize("processes", [2, 3])
def test_processes_give_identical_output(config_path, single_run, tmp_path, processes):
    out = tmp_path / "multi"
    proc = run_cli("generate", str(config_path), "--out", str(out), "--quiet", "--processes", str(processes))
    assert proc.returncode == 0, proc.stderr[-2000:]
    shards = list((out / ".vision_synth" / "shards").glob("*.jsonl"))
    assert len(shards) == processes, "each process writes its own shard"
    assert (out / "annotations.json").read_bytes() == (single_run / "annotations.json").read_bytes()
    assert digest(out) == digest(single_run)


@pytest.mark.slow  # a process SIGKILLed mid-run, then resumed
def test_kill_and_resume_gives_the_same_dataset(config_path, tmp_path):
    out = tmp_path / "killed"
    full = tmp_path / "full"
    args = [str(config_path), "--num-images", "300", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", "generate", *args, "--out", str(out)])
    deadline = time.time() + 120
    while time.time() < deadline:
        images = list((out / "images").glob("*.jpg")) if (out / "images").exists() else []
        if len(images) >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "annotations.json").exists(), "killed before the merge"
    done = len(done_indices((out / ".vision_synth" / "shards").glob("*.jsonl")))
    assert 0 < done < 300
    resumed = run_cli("generate", *args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"generated {300 - done} images" in resumed.stdout, "only the missing samples are generated"
    assert main(["generate", *args, "--out", str(full)]) == 0
    assert (out / "annotations.json").read_bytes() == (full / "annotations.json").read_bytes()
    assert digest(out) == digest(full)
    assert not list((out / "images").glob(".*.partial-*"))


def test_streaming_merge_of_many_shards(tmp_path):
    from helpers import synthetic_samples

    samples = synthetic_samples(n_images=60)
    shards = []
    for k in range(20):  # 20 shards, interleaved indices
        shards.append(tmp_path / f"{k:02d}.jsonl")
        with ShardWriter(shards[-1]) as w:
            for s in samples[k::20]:
                w.add(sample_records(s, f"{s.index}.png"))
    counts = write_annotations(tmp_path / "a.json", shards, {}, [{"id": c, "name": str(c)} for c in (1, 2, 3)])
    data = json.loads((tmp_path / "a.json").read_text())
    assert [im["id"] for im in data["images"]] == list(range(1, 61))
    assert sum(counts.values()) == len(data["annotations"]) == sum(len(s.instances) for s in samples)
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))


@pytest.mark.slow  # three processes, one held back
def test_a_slow_process_plans_from_the_same_shards(config_path, single_run, tmp_path):
    """Every process reads which samples are done before any writes its own: here ranks 1 and 2
    list the shards 2 s late (a slow process on a busy machine), after rank 0 has finished its
    share. Planning from what rank 0 already wrote would shift their shares and drop samples."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, time\n"
        "if os.environ.get('RANK', '0') != '0':\n"
        "    import vision_synth.runner as runner\n"
        "    listed = runner.shard_paths\n"
        "    runner.shard_paths = lambda out_dir: (time.sleep(2.0), listed(out_dir))[1]\n"
    )
    out = tmp_path / "multi"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "vision_synth", "generate", str(config_path), "--out", str(out),
                           "--quiet", "--processes", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "annotations.json").read_bytes() == (single_run / "annotations.json").read_bytes()


def test_a_chunk_is_claimed_once(tmp_path):
    from vision_synth.runner import ChunkClaims

    first, second = ChunkClaims(tmp_path / "claims"), ChunkClaims(tmp_path / "claims")
    assert [first.take(k) for k in range(3)] == [True, True, True]
    assert [second.take(k) for k in range(4)] == [False, False, False, True]


@pytest.mark.slow  # three processes, one of them slow throughout
def test_a_slow_process_makes_fewer_samples(tmp_path):
    """Chunks go to whichever process is free: rank 1, much slower here (0.1 s a sample), makes at
    most one chunk while the others make the rest (a fixed split would give each a third), and the
    dataset is the one a single process makes."""
    import yaml

    from vision_synth.runner import CLAIM_IMAGES

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(small_config(num_images=6 * CLAIM_IMAGES, image={"width": 48, "height": 40})))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, time\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from vision_synth.scene.compositor import Compositor\n"
        "    made = Compositor.sample\n"
        "    Compositor.sample = lambda self, i: (time.sleep(0.1), made(self, i))[1]\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "vision_synth", "generate", str(config), "--out", str(tmp_path / "multi"),
                           "--quiet", "--processes", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shards = tmp_path / "multi" / ".vision_synth" / "shards"
    made = {p.name: len(p.read_text().splitlines()) for p in shards.glob("*.jsonl")}
    assert sum(made.values()) == 6 * CLAIM_IMAGES
    assert made["part-0000-rank-0001.jsonl"] <= CLAIM_IMAGES, made
    assert not list((tmp_path / "multi" / ".vision_synth").glob("claims-*")), "the claims are removed"
    assert main(["generate", str(config), "--out", str(tmp_path / "single"), "--quiet"]) == 0
    assert (tmp_path / "multi" / "annotations.json").read_bytes() == (tmp_path / "single" / "annotations.json").read_bytes()
