"""`vision-synth tune` end to end on a tiny synthetic-as-real setup (discs; 3-step detectors, so a run
takes seconds): the outputs and the order they state, resume without retraining and with the same
bytes, the same seed giving the same result, SIGKILL mid-run then rerun, and the rule that an
unconfirmed top trial is never called a winner. The ranking of a harmful setting below a harmless
one, and two processes, are slow-marked (tests/tune/test_ranking.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tune_helpers import write_setup, write_spec
from vision_synth.cli import main
from vision_synth.quality.utility import bootstrap_interval, verdict_of
from vision_synth.tune.search import run_tune
from vision_synth.tune.spec import load_tune_spec

DETERMINISTIC = ("trials.jsonl", "trials.md", "tune.json", "report.html", "tune_card.md")


def _outputs(out) -> dict[str, bytes]:
    """The files a search writes whose bytes must not depend on how it ran; OUT's own path aside."""
    names = [*DETERMINISTIC, *(n for n in ("best.yaml", "top_trial.yaml") if (out / n).exists())]
    return {n: (out / n).read_bytes().replace(str(out).encode(), b"OUT") for n in names}


@pytest.fixture
def setup(tmp_path):
    return write_setup(tmp_path / "data")


def test_a_search_writes_its_trials_ranking_confirmation_and_report(setup, tmp_path):
    spec = load_tune_spec(write_spec(setup))
    out = tmp_path / "out"
    result = run_tune(spec, out, progress=False)

    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [t["trial"] for t in lines] == [0, 1, 2]
    assert len({json.dumps(t["settings"], sort_keys=True) for t in lines}) == 3  # distinct settings
    # rung 0: all three with seeds 0-1; rung 1: the best two (of 1/eta = 1/2) with seeds 0-3
    assert sorted(len(t["seeds"]) for t in lines) == [2, 4, 4]
    by_rung = {r: [t for t in lines if t["rung"] == r] for r in (0, 1)}
    rung0 = {t["trial"]: np.median([r["ap"] for r in t["runs"][:2]]) / np.median([r["real_ap"] for r in t["runs"][:2]])
             for t in lines}  # each trial's figure over the seeds of rung 0
    dropped = by_rung[0][0]["trial"]
    assert all(rung0[dropped] <= rung0[t["trial"]] for t in by_rung[1]), "the worst of rung 0 stops there"
    for t in lines:  # every figure is the paired check's own, over the trial's seeds
        real, mixed = [r["real_ap"] for r in t["runs"]], [r["ap"] for r in t["runs"]]
        assert t["relative_median_delta"] == pytest.approx(np.median(mixed) / np.median(real) - 1)
        assert t["interval"] == pytest.approx(list(bootstrap_interval(real, mixed)))
    # the real-only arm of a seed is the same in every trial (paired seeds)
    assert len({(r["seed"], r["real_ap"]) for t in lines for r in t["runs"]}) == 4

    summary = json.loads((out / "tune.json").read_text())
    assert summary["trials_tried"] == 3
    ranked = summary["ranking"]
    deeper = [t["trial"] for t in sorted(by_rung[1], key=lambda t: -t["relative_median_delta"])]
    assert ranked == deeper + [dropped]
    assert summary["winner"]["trial"] == ranked[0] == result.winner.trial.index
    confirm = summary["confirmation"]
    assert confirm["seeds"] == [4, 5, 6, 7, 8, 9] and not set(confirm["seeds"]) & {0, 1, 2, 3}, "fresh seeds"
    assert confirm["interval"] == pytest.approx(list(bootstrap_interval(confirm["arms"]["real"]["ap"],
                                                                        confirm["arms"]["real+synthetic"]["ap"])))
    assert summary["verdict"] == verdict_of(confirm["interval"], confirm["sign_test_p"]) == result.verdict
    assert (out / "best.yaml").exists() == (summary["verdict"] == "helps") != (out / "top_trial.yaml").exists()

    table = (out / "trials.md").read_text().splitlines()
    assert [int(row.split("|")[2]) for row in table[4:]] == ranked
    html = (out / "report.html").read_text()
    assert html.count('class="parameter-plot"') == 2 and 'class="utility-plot"' in html
    assert all(f'data-trial="{k}"' in html for k in range(3))
    assert "3 settings were tried" in (out / "tune_card.md").read_text()


def test_a_rerun_resumes_without_training_and_writes_the_same_bytes(setup, tmp_path, monkeypatch):
    spec = load_tune_spec(write_spec(setup))
    out = tmp_path / "out"
    run_tune(spec, out, progress=False)
    first = _outputs(out)
    units = {p.name: p.stat().st_mtime_ns for p in (out / ".vision_synth" / "units").iterdir()}
    import vision_synth.detector as detector

    def refuse(*args, **kwargs):
        raise AssertionError("a finished search trained again")

    monkeypatch.setattr(detector, "train_detector", refuse)
    monkeypatch.setattr("vision_synth.quality.utility.train_detector", refuse)
    run_tune(spec, out, progress=False)
    assert _outputs(out) == first
    assert {p.name: p.stat().st_mtime_ns for p in (out / ".vision_synth" / "units").iterdir()} == units


def test_the_same_seed_gives_the_same_result_and_another_seed_another_design(setup, tmp_path):
    spec = load_tune_spec(write_spec(setup, space={"copy_paste.count": {"choices": [[1, 1], [2, 3]]},
                                                   "copy_paste.scale": {"range": [0.5, 1.5]}},
                                     budget={"trials": 2, "seeds": 2, "max_seeds": 2, "confirm_seeds": 6}))
    run_tune(spec, tmp_path / "a", progress=False)
    run_tune(spec, tmp_path / "b", progress=False)
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "b")
    other = load_tune_spec(write_spec(setup, name="other.yaml", space=spec.model_dump()["space"],
                                      budget={"trials": 2, "seeds": 2, "max_seeds": 2, "confirm_seeds": 6,
                                              "seed": 1}))
    from vision_synth.tune.search import Search

    assert [t.settings for t in Search(other, tmp_path / "c").trials] != \
        [json.loads(line)["settings"] for line in (tmp_path / "a" / "trials.jsonl").read_text().splitlines()]


def test_another_spec_into_the_same_folder_is_refused(setup, tmp_path, capsys):
    out = tmp_path / "out"
    small = {"trials": 1, "seeds": 2, "max_seeds": 2, "confirm_seeds": 6}  # the refusal needs only a finished search
    assert main(["tune", str(write_spec(setup, budget=small)), "--out", str(out), "--quiet"]) == 0
    changed = write_spec(setup, name="changed.yaml", budget={**small, "trials": 2})
    capsys.readouterr()
    assert main(["tune", str(changed), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: holds a search of another spec") and "\n" not in err
    assert main(["tune", str(changed), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert len((out / "trials.jsonl").read_text().splitlines()) == 2


# ~30 s of subprocess searches; the fast suite keeps a rerun that resumes without training and
# writes the same bytes (test_a_rerun_resumes_without_training_and_writes_the_same_bytes)
@pytest.mark.slow
def test_sigkill_mid_search_then_rerun_gives_the_trials_of_an_uninterrupted_run(setup, tmp_path):
    spec_path = write_spec(setup)
    out, reference = tmp_path / "out", tmp_path / "reference"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # each record written a little later, so the kill lands mid-run
        "import time\nimport vision_synth.tune.search as m\noriginal = m.write_json\n"
        "def slow(*args, **kwargs):\n    time.sleep(0.5)\n    return original(*args, **kwargs)\nm.write_json = slow\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "vision_synth", "tune", str(spec_path), "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    units = out / ".vision_synth" / "units"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(list(units.glob("*.json"))) < 3:
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = len(list(units.glob("*.json")))
    assert 3 <= recorded < 16 and not (out / "tune.json").exists(), "killed mid-search (16 trial-seeds in all)"

    assert main(["tune", str(spec_path), "--out", str(out), "--quiet"]) == 0
    assert main(["tune", str(spec_path), "--out", str(reference), "--quiet"]) == 0
    assert _outputs(out) == _outputs(reference)
    assert not [p for p in out.rglob(".*") if ".partial-" in p.name or ".old-" in p.name], "the killed run's leftovers"


def test_an_unconfirmed_top_trial_is_not_called_a_winner(setup, tmp_path):
    """The verdict rule on measured figures: the confirmation's interval decides, whatever the search said."""
    from vision_synth.detector import DetectionMetrics
    from vision_synth.detector_spec import TrainConfig
    from vision_synth.quality.utility import UtilityResult, UtilityRun
    from vision_synth.tune.candidates import make_base
    from vision_synth.tune.search import Trial, TrialResult, TuneResult, write_outputs

    def utility(real, mixed, seeds):
        runs = []
        for s, a, b in zip(seeds, real, mixed):
            runs += [UtilityRun("real", s, DetectionMetrics(a, a, {}, 2, 8, 10), 1.0, 0.5),
                     UtilityRun("real+synthetic", s, DetectionMetrics(b, b, {}, 2, 8, 10), 1.0, 0.5)]
        return UtilityResult(TrainConfig(), runs, {"real_train": 3, "synthetic": 6, "val": 2}, 0, 1.0)

    spec = load_tune_spec(write_spec(setup))
    trials = [TrialResult(Trial(0, {"copy_paste.count": [1, 1], "utility.real_share": 0.25}), "k0", 0,
                          utility([0.3, 0.3], [0.2, 0.25], [0, 1])),
              TrialResult(Trial(1, {"copy_paste.count": [2, 3], "utility.real_share": 0.5}), "k1", 0,
                          utility([0.3, 0.3], [0.4, 0.45], [0, 1]))]
    base, source = make_base(spec), spec.data(spec.train)
    real = [0.3, 0.32, 0.28, 0.31, 0.29, 0.3]
    cases = {"no-evidence": (real, [0.33, 0.30, 0.29, 0.32, 0.28, 0.31]),
             "hurts": (real, [0.2, 0.21, 0.19, 0.2, 0.22, 0.18]),
             "helps": (real, [0.4, 0.41, 0.39, 0.4, 0.42, 0.38])}
    for verdict, (real, mixed) in cases.items():
        out = tmp_path / verdict
        (out / "units").mkdir(parents=True)
        result = TuneResult(out, spec, trials, [(2, 2)], [1, 0], trials[1], utility(real, mixed, [4, 5, 6, 7, 8, 9]), "val")
        assert result.verdict == verdict
        write_outputs(result, base, source, out / "units")
        summary = json.loads((out / "tune.json").read_text())
        assert summary["found"] is (verdict == "helps") and summary["verdict"] == verdict
        if verdict == "helps":
            assert summary["result"].startswith("best setting: trial 1 (copy_paste.count=[2, 3]")
            assert (out / "best.yaml").exists() and not (out / "top_trial.yaml").exists()
            best = (out / "best.yaml").read_text()
            assert "copy_paste:\n  count:\n  - 2\n  - 3\n" in best and "real_share=0.5" in best
        else:
            assert summary["result"].startswith("no setting found that helps (2 settings tried)")
            assert not (out / "best.yaml").exists() and (out / "top_trial.yaml").exists()
            assert "NOT confirmed" in (out / "top_trial.yaml").read_text()
            assert "no setting found that helps" in (out / "report.html").read_text()


def test_settings_that_make_nothing_to_measure_fail_their_trial_not_the_search(setup, tmp_path):
    # min_area above every instance with drop_empty: a candidate of no images
    spec = load_tune_spec(write_spec(setup, space={"min_area": {"choices": [16, 100000]},
                                                   "drop_empty": {"choices": [True]}},
                                     budget={"trials": 2, "seeds": 2, "max_seeds": 2, "confirm_seeds": 6}))
    out = tmp_path / "out"
    result = run_tune(spec, out, progress=False)
    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert lines[1]["verdict"] == "failed" and "has no images" in lines[1]["error"]
    assert lines[0]["verdict"] != "failed" and result.ranking == [0, 1] and result.winner.trial.index == 0
    assert "failed: " in (out / "trials.md").read_text()
