"""`vision-synth tune`: find the generation settings that help on the user's own real data, by
measuring them with the quality gate's utility check (vision_synth/quality/utility.py).

Plan: every trial's settings are checked first (the base loaded with them, the utility training
validated, no val or test image among the images that feed generation or training), then
- rung 0: every trial's candidate is made (cached by its content key) and measured with the first
  `budget.seeds` paired seeds; each later rung keeps the best 1/eta by relative median delta
  (ties: the earlier trial) and measures them on twice the seeds (the same seeds plus new ones);
- the top trial of the last rung is measured again on `confirm_seeds` fresh seeds, never used by
  the search, scored on `test` when the spec has one, else on val. Its verdict comes from that
  interval alone: `helps` names the winner (best.yaml); otherwise "no setting found that helps".

Records: one JSON file per measured (trial, seed) under OUT/.vision_synth/units/, written
atomically after the measurement, so a run killed at any moment resumes where it was;
trials.jsonl, tune.json and the rest are rebuilt from them and hold no wall-clock time (timings
go to timings.json), so a resumed run writes the same bytes as an uninterrupted one.

Processes: under `accelerate launch` the measurements of each phase are split between the
processes (`split_between_processes` over a list of indices): first the real-only runs the phase
needs (so no two processes train the same one), then one trial-seed per slot. Every process
trains with `threads` CPU threads, so the numbers do not depend on how many processes ran.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vision_synth import __version__
from vision_synth.errors import ConfigError, DatasetError, VisionSynthError
from vision_synth.files import dumps_json, remove_stale_stages_in, write_atomic, write_json
from vision_synth.tune.candidates import Candidate, ensure_candidate, make_base
from vision_synth.tune.space import design, rungs
from vision_synth.tune.spec import SOURCE_KEY, UTILITY_PREFIX, TuneSpec

STATE_DIR = ".vision_synth"
OUTPUTS = ("trials.jsonl", "trials.md", "tune.json", "best.yaml", "top_trial.yaml", "report.html", "tune_card.md",
           "timings.json", "candidates", STATE_DIR)
WAIT = timedelta(days=2)  # how long a process waits for the others at the end of a phase


# ------------------------------------------------------------------------------------ trials
@dataclass(frozen=True)
class Trial:
    """One setting of the space: `settings` maps each space key to its value."""

    index: int
    settings: dict[str, Any]

    @property
    def edits(self) -> dict[str, Any]:
        """The settings that go into the base file."""
        return {k: v for k, v in self.settings.items() if not k.startswith(UTILITY_PREFIX) and k != SOURCE_KEY}

    @property
    def utility_settings(self) -> dict[str, Any]:
        return {k[len(UTILITY_PREFIX):]: v for k, v in self.settings.items() if k.startswith(UTILITY_PREFIX)}

    def text(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.settings.items())


def _short(value: Any) -> str:
    from vision_synth.quality.card import setting_label

    return setting_label(value)


@dataclass
class Prepared:
    """A trial checked and ready to measure: its loaded base, candidate key and training settings."""

    trial: Trial
    loaded: Any
    key: str
    train: Any  # TrainConfig
    source: tuple[Path, Path] | None


@dataclass
class TrialResult:
    trial: Trial
    key: str
    rung: int  # the last rung it was measured in
    utility: Any  # UtilityResult over every seed it was measured with (None when it failed)
    error: str | None = None  # why its candidate could not be measured (no images, no class in common)

    @property
    def delta(self) -> float:
        return -np.inf if self.utility is None else self.utility.relative_median_delta

    @property
    def verdict(self) -> str:
        return "failed" if self.utility is None else self.utility.verdict

    def to_json(self) -> dict[str, Any]:
        u = self.utility
        if u is None:
            return {"trial": self.trial.index, "settings": self.trial.settings, "candidate": self.key,
                    "rung": self.rung, "seeds": [], "relative_median_delta": None, "interval": [None, None],
                    "verdict": "failed", "error": self.error, "median_ap": None, "runs": [], "images": None}
        real, mixed = u.arm("real"), u.arm("real+synthetic")
        return {"trial": self.trial.index, "settings": self.trial.settings, "candidate": self.key, "rung": self.rung,
                "seeds": u.seeds, "relative_median_delta": _finite(u.relative_median_delta),
                "interval": [_finite(v) for v in u.interval], "seeds_better": u.seeds_better,
                "sign_test_p": u.sign_test_p, "verdict": u.verdict,
                "median_ap": {"real": u.median("real"), "real+synthetic": u.median("real+synthetic")},
                "runs": [{"seed": a.seed, "real_ap": a.metrics.ap, "ap": b.metrics.ap, "real_ap50": a.metrics.ap50,
                          "ap50": b.metrics.ap50} for a, b in zip(real, mixed)],
                "images": u.images}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass
class TuneResult:
    out: Path
    spec: TuneSpec
    trials: list[TrialResult]  # in trial order
    plan: list[tuple[int, int]]
    ranking: list[int]  # trial indices, best first (by the last rung each reached, then its delta)
    winner: TrialResult
    confirmation: Any  # UtilityResult on the fresh seeds
    confirm_on: str  # "val" or "test"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.confirmation.verdict

    @property
    def found(self) -> bool:
        return self.verdict == "helps"

    def headline(self) -> str:
        c = self.confirmation
        lo, hi = c.interval
        figure = (f"relative median delta {c.relative_median_delta:+.1%} (95% interval {lo:+.1%} to {hi:+.1%}, "
                  f"{len(c.seeds)} fresh seeds on {self.confirm_on})")
        tried = f"{len(self.trials)} settings tried"
        if self.found:
            return f"best setting: trial {self.winner.trial.index} ({self.winner.trial.text()}): {figure}; {tried}"
        why = "its interval lies below 0: it hurts" if self.verdict == "hurts" else "its interval includes 0"
        return (f"no setting found that helps ({tried}): the top trial {self.winner.trial.index} "
                f"({self.winner.trial.text()}) measured {figure}; {why}")

    def lines(self) -> list[str]:
        out = [self.headline()]
        out.append(f"{'rank':>4} {'trial':>5} {'rung':>4} {'seeds':>5} {'delta':>8}  {'95% interval':<19} settings")
        by_index = {t.trial.index: t for t in self.trials}
        for rank, k in enumerate(self.ranking, 1):
            t = by_index[k]
            if t.utility is None:
                out.append(f"{rank:>4} {k:>5} {t.rung:>4} {0:>5} {'failed':>8}  {'':<19} {t.trial.text()}: {t.error}")
                continue
            lo, hi = t.utility.interval
            out.append(f"{rank:>4} {k:>5} {t.rung:>4} {len(t.utility.seeds):>5} {t.utility.relative_median_delta:>+8.1%}  "
                       f"{lo:+7.1%} to {hi:+7.1%}   {t.trial.text()}")
        best = "best.yaml" if self.found else "top_trial.yaml (not confirmed)"
        out.append(f"wrote {self.out / 'trials.jsonl'}, trials.md, {best}, report.html, tune_card.md "
                   f"in {self.seconds:.0f} s")
        out += [f"note: {n}" for n in self.notes]
        return out


# ------------------------------------------------------------------------------------ checks
def _image_files(coco: Path, images: Path) -> list[Path]:
    from vision_synth.coco.reader import load_coco

    dataset = load_coco(coco, images)
    return [dataset.image_file(im) for im in dataset.images]


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _feeding_sets(spec: TuneSpec, prepared: list[Prepared]) -> list[tuple[str, list[Path]]]:
    """(name, image files) of everything that feeds generation or training."""
    sets = [("train", _image_files(*spec.data(spec.train)))]
    for p in prepared:
        if p.source is not None and p.source != spec.data(spec.train):
            sets.append((f"trial {p.trial.index} source {p.source[0]}", _image_files(*p.source)))
        if spec.base.kind == "generate":
            from vision_synth.config import CocoSource, ImageBackground
            from vision_synth.scene.backgrounds import find_images

            scene = p.loaded.scene
            if isinstance(scene.background, ImageBackground):
                sets.append((f"{spec.base_config}: scene.background.images", find_images(scene.resolve(scene.background.images))))
            for i, obj in enumerate(scene.objects):
                if isinstance(obj.source, CocoSource):
                    sets.append((f"{spec.base_config}: scene.objects[{i}].source",
                                 _image_files(scene.resolve(obj.source.annotations), scene.resolve(obj.source.images))))
    return sets


def check_held_out(spec: TuneSpec, prepared: list[Prepared]) -> None:
    """Refuse a search where a val (or test) image also feeds generation or training: the same file
    content in both is a leak, whatever its name."""
    held = {}
    for name, ref in (("val", spec.val), ("test", spec.test)):
        if ref is not None:
            held.update({_sha(f): (name, f) for f in _image_files(*spec.data(ref))})
    seen: set[Path] = set()
    for name, files in _feeding_sets(spec, prepared):
        for f in files:
            if f in seen:
                continue
            seen.add(f)
            hit = held.get(_sha(f))
            if hit is not None:
                raise ConfigError(f"{spec.source_file}: {name}: image {f} is also a {hit[0]} image ({hit[1]}); "
                                  f"{hit[0]} must never feed generation or training")


# ------------------------------------------------------------------------------------ the search
class Search:
    """One tune run in one process (several under accelerate: `state`)."""

    def __init__(self, spec: TuneSpec, out: Path, state=None, progress: bool = True, device: str | None = None) -> None:
        self.spec, self.out, self.state, self.device = spec, Path(out), state, device
        self.progress = progress and (state is None or state.is_main_process)
        self.units = self.out / STATE_DIR / "units"
        self.cache = self.out / STATE_DIR / "utility"
        self.candidates = self.out / "candidates"
        self.base = make_base(spec)
        self.train_set, self.val_set = spec.data(spec.train), spec.data(spec.val)
        self.test_set = spec.data(spec.test) if spec.test is not None else None
        self.trials = [Trial(k, s) for k, s in enumerate(design(spec.space, spec.budget.trials, spec.budget.seed))]
        b = spec.budget
        self.plan = rungs(len(self.trials), b.seeds, b.max_seeds, b.eta)
        self.confirm_seeds = list(range(b.max_seeds, b.max_seeds + b.confirm_seeds))
        self.prepared: list[Prepared] = []

    # -------------------------------------------------------------------------- checking
    def prepare(self) -> None:
        """Load every trial's base, training settings and source (errors name the spec, the trial and
        the base file's key), and check that val and test feed nothing."""
        from vision_synth.detector_spec import TrainConfig
        from vision_synth.quality.utility import dataset_fingerprint
        from vision_synth.spec import validate_spec

        spec = self.spec
        base_train = spec.utility
        fingerprints: dict[tuple[Path, Path], str] = {}
        for trial in self.trials:
            where = f"{spec.source_file}: space: trial {trial.index} ({trial.text()})"
            source = None
            if spec.base.kind != "generate":
                ref = trial.settings.get(SOURCE_KEY, spec.base.source or spec.train)
                source = spec.data(ref)
                if source not in fingerprints:
                    fingerprints[source] = dataset_fingerprint(*source)
            try:
                loaded = self.base.load(trial.edits)
            except VisionSynthError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            train = validate_spec(TrainConfig, {**base_train.model_dump(), **trial.utility_settings},
                                  f"{where}: utility")
            if self.device is not None:  # this process's own GPU under accelerate
                train = train.model_copy(update={"device": self.device})
            key = self.base.key(loaded, fingerprints.get(source, ""))
            self.prepared.append(Prepared(trial, loaded, key, train, source))
        check_held_out(spec, self.prepared)

    # -------------------------------------------------------------------------- records
    def _unit_path(self, phase: str, trial: int, seed: int) -> Path:
        return self.units / f"{phase}-t{trial:04d}-s{seed:04d}.json"

    def _error(self, phase: str, trial: int, seeds: list[int]) -> str | None:
        """Why the trial could not be measured, when one of its records says so."""
        for seed in seeds:
            error = json.loads(self._unit_path(phase, trial, seed).read_text()).get("error")
            if error is not None:
                return error
        return None

    def _result(self, phase: str, trial: int, seeds: list[int]):
        """The UtilityResult of one trial over `seeds`, from its unit records (None when it failed)."""
        from vision_synth.detector import DetectionMetrics
        from vision_synth.quality.utility import UtilityResult, UtilityRun

        runs, images, dropped, seconds = [], {}, 0, 0.0
        for seed in seeds:
            data = json.loads(self._unit_path(phase, trial, seed).read_text())
            if data.get("error") is not None:
                return None
            runs += [UtilityRun(r["arm"], r["seed"], DetectionMetrics(**r["metrics"]), r["train_seconds"],
                                r["final_loss"]) for r in data["runs"]]
            images, dropped, seconds = data["images"], data["dropped"], seconds + data["seconds"]
        return UtilityResult(self.prepared[trial].train, runs, images, dropped, seconds)

    def _measure_unit(self, phase: str, trial: int, seed: int, val: tuple[Path, Path]) -> None:
        from vision_synth.quality.utility import measure_utility

        p = self.prepared[trial]
        start = time.perf_counter()
        record = {"trial": trial, "seed": seed, "phase": phase, "candidate": p.key,
                  "process": 0 if self.state is None else self.state.process_index}
        try:
            candidate: Candidate = ensure_candidate(self.base, p.loaded, p.source, p.key, self.candidates)
            made = time.perf_counter() - start
            if not json.loads(candidate.annotations.read_text())["images"]:
                raise DatasetError(f"the candidate of these settings has no images ({candidate.annotations})")
            result = measure_utility(candidate.annotations, candidate.images, *self.train_set, p.train, [seed],
                                     reference_val=val[0], reference_val_images=val[1], cache=self.cache)
        except DatasetError as exc:  # these settings make nothing to measure: a failed trial, not a failed search
            write_json(self._unit_path(phase, trial, seed), {**record, "error": str(exc)}, indent=1)
            return
        write_json(self._unit_path(phase, trial, seed), {
            **record, "runs": [{"arm": r.arm, "seed": r.seed, "metrics": asdict(r.metrics),
                                "train_seconds": r.train_seconds, "final_loss": r.final_loss} for r in result.runs],
            "images": result.images, "dropped": result.dropped_annotations,
            "seconds": result.seconds, "candidate_seconds": made}, indent=1)

    def _split(self, items: list) -> list:
        if self.state is None:
            return items
        with self.state.split_between_processes(list(range(len(items)))) as mine:
            return [items[i] for i in mine]

    def _barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def _run_phase(self, phase: str, units: list[tuple[int, int]], val: tuple[Path, Path], bar) -> None:
        """Measure the (trial, seed) units not yet recorded, split between the processes: first the
        real-only runs they need, then the units."""
        from vision_synth.quality.utility import real_arm_run

        todo = [(t, s) for t, s in units if not self._unit_path(phase, t, s).is_file()]
        jobs: dict[tuple[str, int], tuple[int, int]] = {}  # one per (training settings, seed): real_share aside
        for t, s in todo:
            settings = self.prepared[t].train.model_dump(mode="json", exclude={"real_share"})
            jobs.setdefault((json.dumps(settings, sort_keys=True), s), (t, s))
        real_jobs = [jobs[k] for k in sorted(jobs)]
        for t, s in self._split(real_jobs):
            real_arm_run(*self.train_set, *val, self.prepared[t].train, s, cache=self.cache)
        self._barrier()
        for t, s in self._split(todo):
            self._measure_unit(phase, t, s, val)
            bar.update(1)
        self._barrier()
        if self.state is not None:
            bar.n = sum(1 for _ in self.units.glob("*.json"))
            bar.refresh()

    def _ranked(self, members: list[int], seeds: list[int]) -> list[int]:
        results = {k: self._result("search", k, seeds) for k in members}
        deltas = {k: -np.inf if r is None else r.relative_median_delta for k, r in results.items()}
        return sorted(members, key=lambda k: (np.inf if np.isnan(deltas[k]) else -deltas[k], k))  # failed (-inf) last

    # -------------------------------------------------------------------------- the run
    def run(self) -> TuneResult | None:
        from tqdm import tqdm

        start = time.perf_counter()
        total = sum(n * (s - (self.plan[r - 1][1] if r else 0)) for r, (n, s) in enumerate(self.plan))
        total += len(self.confirm_seeds)
        done = sum(1 for _ in self.units.glob("*.json")) if self.units.is_dir() else 0
        bar = tqdm(total=total, initial=done, desc="tune", unit="trial-seed", disable=not self.progress)
        members = [t.index for t in self.trials]
        reached = {k: 0 for k in members}
        ranking: list[int] = []
        for r, (n, s) in enumerate(self.plan):
            members = members if r == 0 else ranking[:n]
            for k in members:
                reached[k] = r
            seeds = list(range(s))
            bar.set_postfix(rung=f"{r}: {len(members)} trials × {s} seeds")
            self._run_phase("search", [(k, seed) for k in members for seed in seeds], self.val_set, bar)
            ranking = self._ranked(members, seeds)
        # the overall order: deeper rungs first, each by its own delta
        order: list[int] = []
        for r in reversed(range(len(self.plan))):
            seeds = list(range(self.plan[r][1]))
            order += [k for k in self._ranked([k for k in reached if reached[k] == r], seeds)]
        winner = order[0]
        confirm_on = "test" if self.test_set is not None else "val"
        bar.set_postfix(rung=f"confirm trial {winner} on {len(self.confirm_seeds)} fresh seeds")
        self._run_phase("confirm", [(winner, s) for s in self.confirm_seeds], self.test_set or self.val_set, bar)
        bar.close()
        if self.state is not None and not self.state.is_main_process:
            return None
        results = []
        for t in self.trials:
            seeds = list(range(self.plan[reached[t.index]][1]))
            results.append(TrialResult(t, self.prepared[t.index].key, reached[t.index],
                                       self._result("search", t.index, seeds), self._error("search", t.index, seeds)))
        if results[winner].utility is None:
            raise DatasetError(f"{self.spec.source_file}: every trial failed; trial {winner}: {results[winner].error}")
        confirmation = self._result("confirm", winner, self.confirm_seeds)
        if confirmation is None:
            raise DatasetError(f"trial {winner}: {self._error('confirm', winner, self.confirm_seeds)}")
        result = TuneResult(self.out, self.spec, results, self.plan, order, results[winner], confirmation, confirm_on,
                            time.perf_counter() - start)
        if len(self.trials) < self.spec.budget.trials:
            result.notes.append(f"the space holds {len(self.trials)} distinct settings: all were tried "
                                f"(budget.trials {self.spec.budget.trials})")
        write_outputs(result, self.base, self.prepared[winner].source, self.units)
        return result


# ------------------------------------------------------------------------------------ outputs
def _timeless(obj: Any) -> Any:
    """JSON of a result without its wall-clock figures (those go to timings.json)."""
    if isinstance(obj, dict):
        return {k: _timeless(v) for k, v in obj.items() if k not in ("seconds", "train_seconds")}
    if isinstance(obj, list):
        return [_timeless(v) for v in obj]
    return obj


def tune_summary(result: TuneResult, command: str) -> dict[str, Any]:
    from vision_synth.quality.report import jsonable

    spec = result.spec
    return jsonable({
        "version": __version__,
        "spec": spec.source_file,
        "spec_digest": spec.digest(),
        "base": {"kind": spec.base.kind, "config": str(spec.base_config)},
        "trials_tried": len(result.trials),
        "rungs": [{"rung": r, "trials": n, "seeds": list(range(s))} for r, (n, s) in enumerate(result.plan)],
        "ranking": result.ranking,
        "winner": {"trial": result.winner.trial.index, "settings": result.winner.trial.settings,
                   "candidate": result.winner.key,
                   "search_relative_median_delta": _finite(result.winner.utility.relative_median_delta)},
        "confirmation": {"on": result.confirm_on, "seeds": result.confirmation.seeds,
                         **_timeless(result.confirmation.to_json())},
        "verdict": result.verdict,
        "found": result.found,
        "result": result.headline(),
        "best": "best.yaml" if result.found else None,
        "command": command,
        "notes": result.notes,
    })


def _trials_markdown(result: TuneResult) -> str:
    keys = list(result.spec.space)
    by_index = {t.trial.index: t for t in result.trials}
    rows = []
    for rank, k in enumerate(result.ranking, 1):
        t = by_index[k]
        settings = [_short(t.trial.settings[key]) for key in keys]
        if t.utility is None:
            rows.append([rank, k, *settings, t.rung, 0, "n/a", "n/a", f"failed: {t.error}"])
            continue
        lo, hi = t.utility.interval
        rows.append([rank, k, *settings, t.rung, len(t.utility.seeds), f"{t.utility.relative_median_delta:+.1%}",
                     f"{lo:+.1%} to {hi:+.1%}", t.utility.verdict])
    head = ["rank", "trial", *keys, "rung", "seeds", "relative median delta", "95% interval", "verdict"]
    lines = ["| " + " | ".join(map(str, head)) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_outputs(result: TuneResult, base, source: tuple[Path, Path] | None, units: Path) -> None:
    """Every output file of a finished search (`base`: the candidates' base; `source`: the set the
    winner's base is applied to; `units`: the folder of unit records, for timings.json)."""
    from vision_synth.quality.card import render_tune_card, render_tune_report

    out = result.out
    write_atomic(out / "trials.jsonl", "".join(dumps_json(t.to_json()) + "\n" for t in result.trials))
    table = _trials_markdown(result)
    write_atomic(out / "trials.md", f"{result.headline()}\n\n{table}")
    name = "best.yaml" if result.found else "top_trial.yaml"
    summary = tune_summary(result, base.command(out / name, source))
    write_json(out / "tune.json", summary, indent=2)
    name, other = ("best.yaml", "top_trial.yaml") if result.found else ("top_trial.yaml", "best.yaml")
    header = (f"# {'best' if result.found else 'top (NOT confirmed: ' + result.verdict + ')'} setting of "
              f"vision-synth tune {result.spec.source_file}, trial {result.winner.trial.index}: "
              f"{result.winner.trial.text()}\n# {result.headline()}\n# run: {summary['command']}\n")
    utility = result.winner.trial.utility_settings
    if utility:
        header += f"# measured with the utility training's {', '.join(f'{k}={v}' for k, v in utility.items())}\n"
    body = yaml.safe_dump(base.written(result.winner.trial.edits), sort_keys=False)
    write_atomic(out / name, header + body)
    (out / other).unlink(missing_ok=True)
    write_atomic(out / "tune_card.md", render_tune_card(summary, table))
    write_atomic(out / "report.html", render_tune_report(summary, [t.to_json() for t in result.trials],
                                                         result.spec.space))
    write_json(out / "timings.json", {
        "seconds_this_run": round(result.seconds, 1),
        "trial_seeds": {f.stem: round(json.loads(f.read_text()).get("seconds", 0.0), 1) for f in sorted(units.glob("*.json"))},
        "candidates": {f.stem: round(json.loads(f.read_text()).get("candidate_seconds", 0.0), 1)
                       for f in sorted(units.glob("*.json"))}}, indent=2)


# ------------------------------------------------------------------------------------ entry
def prepare_output(out: Path, spec: TuneSpec, overwrite: bool) -> None:
    """OUT new, or holding this same search (resume), or cleared with `overwrite`; another search's
    folder is refused."""
    state_file = out / STATE_DIR / "tune_state.json"
    state = {"spec_digest": spec.digest(), "version": __version__}
    if out.exists() and any(out.iterdir()):
        previous = json.loads(state_file.read_text()) if state_file.is_file() else None
        if overwrite:
            for name in OUTPUTS:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        elif previous is None:
            raise VisionSynthError(f"{out}: folder is not empty and holds no tune run; choose another --out or "
                                   "pass --overwrite")
        elif previous != state:
            raise VisionSynthError(f"{out}: holds a search of another spec (digest {previous.get('spec_digest')}, "
                                   f"this one {state['spec_digest']}: the spec or its base file changed); choose "
                                   "another --out or pass --overwrite")
    write_json(state_file, state, indent=2)


def run_tune(spec: TuneSpec, out: str | Path, overwrite: bool = False, progress: bool = True) -> TuneResult | None:
    """Search the spec's space (see the module doc); returns the result on the main process (None on
    the others under accelerate). Resumes a killed run of the same spec into `out`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        return _run_tune(spec, Path(out), overwrite, progress)
    finally:
        torch.set_num_threads(threads)


def _run_tune(spec: TuneSpec, out: Path, overwrite: bool, progress: bool) -> TuneResult | None:
    from vision_synth.runner import distributed_state

    state = distributed_state(timeout=WAIT)
    device = None
    if state is not None and state.device.type == "cuda" and spec.utility.device == "auto":
        device = str(state.device)  # one GPU a process
    if state is not None and state.device.type == "cpu":
        import cv2

        cv2.setNumThreads(1)
    search = Search(spec, out, state, progress, device)
    search.prepare()  # every trial checked before anything is written or trained
    if state is None or state.is_main_process:
        prepare_output(out, spec, overwrite)
        for folder in (out, out / STATE_DIR, out / STATE_DIR / "units", out / STATE_DIR / "utility", out / "candidates"):
            remove_stale_stages_in(folder)  # what a killed run was writing (records, candidates): made again
    if state is not None:
        state.wait_for_everyone()
    return search.run()
