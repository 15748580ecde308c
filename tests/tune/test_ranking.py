"""The property tune exists for, measured (slow: ~14 detector runs of 60 steps): on a synthetic-as-real
setup, settings whose labels are shifted by half their size rank below the same settings with true
labels; and two processes under accelerate write the trials of one."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import write_coco_dataset
from tune_helpers import DISC, disc_samples, shifted, write_setup, write_spec
from vision_synth.cli import main
from vision_synth.tune.search import run_tune
from vision_synth.tune.spec import load_tune_spec

pytestmark = pytest.mark.slow

TRUE = {"coco": "train/annotations.json", "images": "train/images"}
SHIFTED = {"coco": "shifted/annotations.json", "images": "shifted/images"}


def _ranking_spec(root):
    setup = write_setup(root, n_train=4, n_val=3)
    # the same real images, every mask (and so its box) moved right and down by half its size
    write_coco_dataset(root / "shifted", shifted(disc_samples(4, seed=1), 0.5), category_names=DISC)
    (root / "base.yaml").write_text(yaml.safe_dump({"pipeline": "pipeline.yaml", "copies": 4}))
    return write_spec(setup, space={"source": {"choices": [TRUE, SHIFTED]},
                                    "utility.real_share": {"choices": [0.25, 0.5]}},
                      budget={"trials": 4, "seeds": 2, "max_seeds": 4, "eta": 2, "confirm_seeds": 6},
                      utility={"steps": 60, "batch_size": 4, "crop_size": 64, "warmup_steps": 5, "device": "cpu"})


def test_shifted_labels_rank_below_true_labels(tmp_path):
    result = run_tune(load_tune_spec(_ranking_spec(tmp_path / "data")), tmp_path / "out", progress=False)
    trials = {t.trial.index: t for t in result.trials}
    harmful = [k for k, t in trials.items() if t.trial.settings["source"] == SHIFTED]
    harmless = [k for k, t in trials.items() if t.trial.settings["source"] == TRUE]
    assert len(harmful) == len(harmless) == 2
    rank = {k: i for i, k in enumerate(result.ranking)}
    assert max(rank[k] for k in harmless) < min(rank[k] for k in harmful), result.lines()
    assert result.winner.trial.settings["source"] == TRUE
    for k in harmful:  # and it is measured to hurt, not merely ordered: its interval lies below 0
        assert trials[k].utility.interval[1] < 0, result.lines()
    # rung 1 kept the two true-label settings and measured them on seeds 0-3
    assert sorted(k for k, t in trials.items() if t.rung == 1) == sorted(harmless)


def test_two_processes_write_the_trials_of_one(tmp_path):
    spec = write_spec(write_setup(tmp_path / "data"))
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["tune", str(spec), "--out", str(one), "--quiet"]) == 0
    assert main(["tune", str(spec), "--out", str(two), "--quiet", "--processes", "2"]) == 0
    for name in ("trials.jsonl", "trials.md", "tune.json", "report.html", "tune_card.md"):
        assert (two / name).read_bytes().replace(str(two).encode(), b"OUT") == \
            (one / name).read_bytes().replace(str(one).encode(), b"OUT"), name
    processes = {json.loads(p.read_text())["process"] for p in (two / ".vision_synth" / "units").glob("*.json")}
    assert processes == {0, 1}, "each process measured its share"
