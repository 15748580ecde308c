"""tools/bench_diffusion.py runs end to end on the tiny CPU model and prints both figures."""

import os
import re
import subprocess
import sys

import pytest

from diffusion_helpers import REPO


@pytest.mark.slow  # a benchmark run (~25 s)
def test_bench_tiny_prints_naive_ours_and_ratio():
    # one thread: on two shared cores OpenMP's spinning threads make the tiny model crawl
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench_diffusion.py"), "--tiny", "--images", "2"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    naive = re.search(r"^naive: (\d+\.\d+) images/s  \(batch 1, float32, \w+, default attention\)$", out, re.M)
    ours = re.search(r"^ours: (\d+\.\d+) images/s  \(batch 2, float32, DPMSolverMultistepScheduler, sdpa\)$", out, re.M)
    ratio = re.search(r"^speedup: (\d+\.\d+)x$", out, re.M)
    assert naive and ours and ratio, out
    assert float(naive.group(1)) > 0 and float(ours.group(1)) > 0
    assert "size: 64×64  steps: 2  images: 2  device: cpu" in out
