"""The gate: thresholds over the quality figures decide whether a dataset is published.

Rejected state (a dataset directory that failed the gate):
  annotations.json      → annotations.rejected.json (split files annotations_*.json likewise)
  dataset_card.md       → dataset_card.rejected.md (written with a REJECTED banner)
  REJECTED.md           which gates failed, by how much, and how to check again
  quality.json, report.html stay, with `"passed": false`.
Nothing there reads as a published COCO dataset: tools looking for annotations.json find none.
Checking a rejected directory again reads annotations.rejected.json and, if the gate now passes,
renames everything back and removes REJECTED.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vision_synth.coco.writer import write_atomic
from vision_synth.errors import DatasetError, VisionSynthError

ANNOTATIONS = "annotations.json"
REJECTED_SUFFIX = ".rejected"
REJECTED_NOTE = "REJECTED.md"
CARD = "dataset_card.md"
# what a check may leave in a dataset directory (for `generate --overwrite` to clear)
OUTPUTS = ("quality.json", "report.html", REJECTED_NOTE, "annotations.rejected.json", "dataset_card.rejected.md")


class GateFailed(VisionSynthError):
    """The dataset broke a quality threshold: it is left unpublished (rejected state), exit code 3."""

    exit_code = 3


@dataclass(frozen=True)
class GateResult:
    """One threshold: `value` against `threshold` (`kind` 'max' or 'min'); `margin` is how far the
    value lies on the failing side (positive = failed by that much)."""

    name: str
    metric: str
    kind: str
    threshold: float
    value: float | None
    passed: bool

    @property
    def margin(self) -> float | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value - self.threshold if self.kind == "max" else self.threshold - self.value

    def message(self) -> str:
        if self.value is None or math.isnan(self.value):
            return f"{self.name}: {self.metric} was not measured"
        sign = "<=" if self.kind == "max" else ">="
        if self.passed:
            return f"{self.name}: {self.metric} {_fmt(self.value)} {sign} {_fmt(self.threshold)} (ok)"
        broken = ">" if self.kind == "max" else "<"
        return (f"{self.name}: {self.metric} {_fmt(self.value)} {broken} {_fmt(self.threshold)} "
                f"(fails by {_fmt(self.margin)})")

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.name, "metric": self.metric, "kind": self.kind, "threshold": self.threshold,
                "value": self.value, "passed": self.passed, "margin": self.margin, "message": self.message()}


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def check_gate(name: str, metric: str, kind: str, threshold: float, value: float | None) -> GateResult:
    """A threshold compared with a value; a missing value fails (the gate asked for a figure that was
    not measured)."""
    if value is None or math.isnan(value):
        return GateResult(name, metric, kind, threshold, None, False)
    passed = value <= threshold if kind == "max" else value >= threshold
    return GateResult(name, metric, kind, float(threshold), float(value), bool(passed))


def evaluate(gate, figures: dict[str, Callable[[], float | None]], metrics: dict[str, str]) -> list[GateResult]:
    """Every threshold set in `gate` (a GateSpec) against its figure. `figures` maps a gate key to a
    function giving the value; `metrics` to the metric's name in the report."""
    results = []
    for name, threshold in gate.model_dump().items():
        if threshold is None:
            continue
        kind = "min" if name.startswith("min_") else "max"
        value = figures[name]() if name in figures else None
        results.append(check_gate(name, metrics.get(name, name), kind, threshold, value))
    return results


# ------------------------------------------------------------------------------------- states
def rejected_name(path: Path) -> Path:
    """annotations.json → annotations.rejected.json"""
    return path.with_name(f"{path.stem}{REJECTED_SUFFIX}{path.suffix}")


def is_rejected(dataset_dir: Path) -> bool:
    return (Path(dataset_dir) / REJECTED_NOTE).exists() or rejected_name(Path(dataset_dir) / ANNOTATIONS).exists()


def current_annotations(dataset_dir: Path) -> Path:
    """The dataset's annotations file: annotations.json, or annotations.rejected.json of a dataset an
    earlier check rejected."""
    dataset_dir = Path(dataset_dir)
    published = dataset_dir / ANNOTATIONS
    rejected = rejected_name(published)
    if published.is_file():
        return published
    if rejected.is_file():
        return rejected
    raise DatasetError(f"{dataset_dir}: no {ANNOTATIONS} (nor {rejected.name}); is this a dataset directory?")


def _annotation_files(dataset_dir: Path) -> list[Path]:
    """annotations.json and the split files annotations_*.json (published names)."""
    return [dataset_dir / ANNOTATIONS, *sorted(dataset_dir.glob("annotations_*.json"))]


def reject(dataset_dir: Path, why: str) -> None:
    """Put a dataset into the rejected state: REJECTED.md first (so a crash midway still says so), then
    the annotation files and the card renamed."""
    dataset_dir = Path(dataset_dir)
    write_atomic(dataset_dir / REJECTED_NOTE, why)
    for path in _annotation_files(dataset_dir):
        if path.is_file() and not path.name.endswith(f"{REJECTED_SUFFIX}.json"):
            path.replace(rejected_name(path))
    card = dataset_dir / CARD
    if card.is_file():
        card.unlink()  # the rejected card is written as dataset_card.rejected.md


def publish(dataset_dir: Path) -> None:
    """Leave the rejected state (after a passing check): annotation files renamed back, the note and
    the rejected card removed."""
    dataset_dir = Path(dataset_dir)
    for path in sorted(dataset_dir.glob(f"annotations*{REJECTED_SUFFIX}.json")):
        published = path.with_name(path.name.replace(f"{REJECTED_SUFFIX}.json", ".json"))
        if published.exists():
            path.unlink()  # a rerun wrote a fresh published file since the rejection: that one was checked
        else:
            path.replace(published)
    rejected_name(dataset_dir / CARD).unlink(missing_ok=True)
    (dataset_dir / REJECTED_NOTE).unlink(missing_ok=True)


def rejection_note(dataset_dir: Path, failed: list[GateResult], command: str) -> str:
    lines = "\n".join(f"- **{g.name}**: {g.message()}" for g in failed)
    return f"""# REJECTED: this dataset did not pass the quality gate

`{dataset_dir}` is not published. Its annotations are kept as `annotations.rejected.json`
(split files as `annotations_*.rejected.json`); no `annotations.json` exists until a check passes.

## Failed gates
{lines}

Details: `quality.json` and `report.html` in this directory.

## What next
Fix the data (or, with reason, the thresholds in the `quality:` config) and check again:

    {command}

A passing check renames the files back and removes this note.
"""
