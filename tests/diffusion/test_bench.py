"""tools/bench_diffusion.py runs end to end on the tiny CPU model, and its arms compare like with
like: one scheduler and step count, SDPA stated, a plain batch-1 baseline, padded batches."""

import os
import re
import subprocess
import sys

import pytest

from diffusion_helpers import REPO

sys.path.insert(0, str(REPO / "tools"))


@pytest.mark.slow  # a benchmark run (~25 s)
def test_bench_tiny_prints_every_arm_with_the_same_scheduler_and_steps():
    # one thread: on two shared cores OpenMP's spinning threads make the tiny model crawl
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench_diffusion.py"), "--tiny", "--images", "3"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    arm = r"(\d+\.\d+) images/s  \(batch (\d+), (\w+), (\w+), (\d+) steps, (\w+)(.*)\)$"
    naive = re.search(rf"^naive: {arm}", out, re.M)
    base = re.search(rf"^fp16 batch 1: {arm}", out, re.M)
    ours = re.search(rf"^ours: {arm}", out, re.M)
    assert naive and base and ours, out
    assert naive.group(2) == base.group(2) == "1" and ours.group(2) == "2"
    # same scheduler, same steps, same attention kernel in every arm
    for group in (4, 5, 6):
        assert naive.group(group) == base.group(group) == ours.group(group), out
    assert naive.group(4) == "DPMSolverMultistepScheduler" and naive.group(5) == "2" and naive.group(6) == "sdpa"
    assert naive.group(3) == "float32" and base.group(3) == "float32"  # on CPU the fp16 arm runs float32
    assert "padded" in ours.group(7)
    assert all(float(m.group(1)) > 0 for m in (naive, base, ours))
    assert re.search(r"^speedup: \d+\.\d+x over naive, \d+\.\d+x over fp16 batch 1$", out, re.M), out
    assert "size: 64×64  steps: 2  images: 3  device: cpu" in out


def test_batches_are_padded_to_one_shape():
    from bench_diffusion import padded_batches

    calls = padded_batches(list("abcde"), 2)
    assert [rows for rows, _ in calls] == [["a", "b"], ["c", "d"], ["e", "e"]]
    assert [n for _, n in calls] == [2, 2, 1]  # the padding row is not counted
    assert sum(n for _, n in calls) == 5
