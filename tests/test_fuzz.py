"""tools/fuzz.py: mutated configs, COCO files and broken images through every entry point of the CLI
find no traceback, no exit code but 0, 2 or 3, no error of more than one line and nothing
half-written; and the harness itself fails each of those, so that "no failure" means something."""

import json
import sys
import time

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "tools"))

import fuzz  # noqa: E402


def _failures(report) -> str:
    return "\n".join(f"{f.case} [{f.entry}] {f.detail}\n  replay: python tools/fuzz.py --seed {report.seed} "
                     f"--case {f.case}" for f in report.failures)


def test_a_few_dozen_cases_of_each_family_find_nothing():
    counts = {"config": 16, "coco": 12, "image": 8}
    report = fuzz.run_fuzz(seed=7, counts=counts, subprocess_every=18, timeout=120, progress=False)
    assert report.failures == [], _failures(report)
    assert dict(report.cases) == counts and report.subprocess_runs == 2
    outcomes = {entry: c for entry, c in report.outcomes.items()}
    assert sum(c["error"] for c in outcomes.values()) > 0 and sum(c["ok"] for c in outcomes.values()) > 0
    assert {"validate", "generate"} <= set(outcomes) and len(set(outcomes) & {"augment", "augment-rare", "check",
                                                                             "split", "merge", "export"}) >= 3


@pytest.mark.slow  # the full size: 2,000 configs, 1,000 COCO files, 200 images (tens of minutes on 2 busy cores)
def test_the_full_fuzz_finds_nothing():
    report = fuzz.run_fuzz(seed=0, counts=fuzz.FULL, subprocess_every=100, timeout=120, progress=False)
    print("\n".join(report.lines()))
    assert report.failures == [], _failures(report)
    assert report.cases["config"] >= 2000 and report.cases["coco"] >= 1000 and report.cases["image"] >= 200
    assert report.subprocess_runs >= 30
    assert set(report.outcomes) >= set(fuzz.ENTRY_POINTS)


# ------------------------------------------------------------------------------ the judge itself
def _behave(tmp_path, kind):
    """A stand-in for vision_synth.cli.main that misbehaves as `kind` says."""
    out = tmp_path / "out"

    def fake(argv):
        if kind == "traceback":
            raise TypeError("unsupported operand")
        if kind == "traceback on stderr":
            print("Traceback (most recent call last):\n  File ...\nKeyError: 'x'", file=sys.stderr)
            return 2
        if kind == "exit 1":
            return 1
        if kind == "two lines":
            print("warning: something\nerror: /x.yaml: bad", file=sys.stderr)
            return 2
        if kind == "no file named":
            print("error: something is wrong", file=sys.stderr)
            return 2
        if kind == "half-written":
            out.mkdir()
            (out / "images").mkdir()
            print(f"error: {tmp_path}/a.json: bad record", file=sys.stderr)
            return 2
        if kind == "stage left":
            (tmp_path / ".out.partial-12345-0a1b2c3d").mkdir()
            return 0
        if kind == "unreadable output":
            out.mkdir()
            (out / "annotations.json").write_text('{"images": 5}')
            return 0
        if kind == "slow":
            time.sleep(5)
            return 0
        if kind == "refused":
            print(f"error: {tmp_path}/a.json: images[0] (id 1): bad", file=sys.stderr)
            return 2
        out.mkdir()
        (out / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')
        return 0

    return fake


@pytest.mark.parametrize("kind, outcome, detail", [
    ("traceback", "FAIL", "traceback: TypeError: unsupported operand"),
    ("traceback on stderr", "FAIL", "stderr holds a traceback"),
    ("exit 1", "FAIL", "exit code 1"),
    ("two lines", "FAIL", "exit 2 without one 'error: ...' line"),
    ("no file named", "FAIL", "error names no file, key or flag"),
    ("half-written", "FAIL", "out changed (half-written)"),
    ("stage left", "FAIL", "stages or temp files left: ['.out.partial-12345-0a1b2c3d']"),
    ("unreadable output", "FAIL", "the reader refuses what it wrote"),
    ("slow", "FAIL", "timeout: still running after 1 s"),
    ("refused", "error", "images[0] (id 1): bad"),
    ("fine", "ok", ""),
])
def test_the_judge_fails_what_the_issue_forbids(tmp_path, monkeypatch, kind, outcome, detail):
    import vision_synth.cli

    monkeypatch.setattr(vision_synth.cli, "main", _behave(tmp_path, kind))
    run = fuzz.Run("augment", ["augment"], tmp_path / "out", [], tmp_path / "out" / "annotations.json")
    result = fuzz.judge(run, fuzz.Case("coco-0", "test", tmp_path, [run]), timeout=1)
    assert result.outcome == outcome and detail in result.detail, result.detail


def test_a_case_id_replays_the_same_input(tmp_path):
    """Case `coco-5` of seed 3 is the same bytes wherever and whenever it is built (what --case relies on)."""
    with fuzz.fuzz_process():
        base = fuzz.build_base(tmp_path / "base")
        for case_id in ("config-4", "coco-5", "image-6"):
            first = fuzz.make_case(3, case_id, tmp_path / "a", base)
            again = fuzz.make_case(3, case_id, tmp_path / "b", base)
            assert first.what == again.what
            assert [r.argv for r in first.runs] == [[a.replace(str(again.root), str(first.root)) for a in r.argv]
                                                     for r in again.runs]
            assert fuzz._tree(first.root) == fuzz._tree(again.root)
            other = fuzz.make_case(4, case_id, tmp_path / "c", base)
            assert other.what != first.what or fuzz._tree(other.root) != fuzz._tree(first.root)


FAKE_WORKER = """
import json, os, signal, sys
cases, results, marker = sys.argv[1:4]
with open(results, "a") as log:
    for line in open(cases).read().split():
        log.write(json.dumps({"start": line}) + "\\n"); log.flush()
        if line == "coco-1" and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGSEGV)
        log.write(json.dumps({"result": {"case": line, "entry": "split", "outcome": "error", "detail": "", "argv": []}})
                  + "\\n")
        log.write(json.dumps({"end": line, "what": "", "subprocess": 0}) + "\\n")
"""


def test_a_worker_that_dies_fails_its_case_and_the_next_cases_still_run(tmp_path, monkeypatch):
    """A crash (a signal that ends the process, as pycocotools' segfault on a far polygon point did)
    is a failure of the case it hit; a new worker carries on with the cases after it."""
    script = tmp_path / "worker.py"
    script.write_text(FAKE_WORKER)
    monkeypatch.setattr(fuzz, "worker_command", lambda cases, results, seed, timeout: [
        sys.executable, str(script), str(cases), str(results), str(tmp_path / "crashed")])
    report = fuzz.run_fuzz(0, {"coco": 4}, subprocess_every=0, progress=False)
    assert [(f.case, f.entry) for f in report.failures] == [("coco-1", "(process)")]
    assert "the fuzz worker died (exit -11)" in report.failures[0].detail
    assert report.cases["coco"] == 4 and report.outcomes["split"]["error"] == 3  # coco-0, -2, -3
