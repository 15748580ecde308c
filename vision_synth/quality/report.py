"""The values of one quality check: what was measured, the gates' outcomes, and their JSON
(quality.json). Rendering (card, report.html) is vision_synth/quality/card.py; writing is
vision_synth/publish.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vision_synth.quality.duplicates import DuplicateReport
from vision_synth.quality.fidelity import FidelityResult
from vision_synth.quality.gate import GateFailed, GateResult
from vision_synth.quality.labels import LabelReport
from vision_synth.quality.memorisation import DCRResult


@dataclass
class QualityReport:
    """Everything one check measured and decided. `passed` is the gate's verdict; the publisher puts
    the directory in the published state when True and in the rejected state when False.
    `annotations`: the file that was checked (a staging file, or the directory's current one)."""

    dataset_dir: Path
    annotations: Path
    images_dir: Path
    spec: Any  # QualitySpec
    passed: bool
    gates: list[GateResult]
    labels: LabelReport
    duplicates: DuplicateReport
    fidelity: FidelityResult | None
    memorisation: DCRResult | None
    utility: Any  # vision_synth.quality.utility.UtilityResult | None
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    created: str = ""
    command: str = ""  # how to check again (REJECTED.md)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def state(self) -> str:
        return "published" if self.passed else "rejected"

    def to_json(self) -> dict[str, Any]:
        return jsonable({
            "dataset": str(self.dataset_dir),
            "created": self.created,
            "passed": self.passed,
            "state": self.state,
            "failed_gates": [g.name for g in self.failed],
            "not_measured": [g.name for g in self.gates if not g.measured],
            "gates": [g.to_json() for g in self.gates],
            "labels": self.labels.to_json(),
            "duplicates": self.duplicates.to_json(),
            "fidelity": None if self.fidelity is None else self.fidelity.to_json(),
            "memorisation": None if self.memorisation is None else self.memorisation.to_json(),
            "utility": None if self.utility is None else self.utility.to_json(),
            "notes": self.notes,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "provenance": self.provenance,
            "config": self.spec.model_dump(mode="json"),
        })

    def lines(self) -> list[str]:
        out = [f"quality gate {'PASSED' if self.passed else 'FAILED'}: {self.dataset_dir} is {self.state}"]
        out += [f"  {g.message()}" for g in self.gates]
        if self.fidelity is not None:
            f = self.fidelity
            out.append(f"  {f.name('FID')} {f.fid:.4g}, {f.name('KID')} {f.kid_mean:.4g} ± {f.kid_std:.2g} "
                       f"({f.n_synthetic} synthetic vs {f.n_reference} reference {f.unit})")
        d = self.duplicates
        out.append(f"  duplicates: {len(d.flagged)} of {d.n_images} images flagged, {len(d.removed)} removed")
        out.append(f"  labels: {self.labels.issues} issues")
        if self.memorisation is not None:
            out.append(f"  memorisation: min normalised DCR {self.memorisation.min:.3g}, "
                       f"{self.memorisation.close_fraction:.1%} closer than the reference's "
                       f"{self.memorisation.close_quantile:.0%} quantile")
        if self.utility is not None:
            out.append("  utility: " + utility_line(self.utility))
        out += [f"  note: {n}" for n in self.notes]
        return out

    def raise_if_failed(self) -> None:
        """GateFailed (exit code 3) naming the failed gates, when the gate did not pass."""
        if not self.passed:
            detail = "; ".join(g.message() for g in self.failed)
            raise GateFailed(f"{self.dataset_dir}: quality gate failed, dataset rejected "
                             f"(see {self.dataset_dir / 'REJECTED.md'}): {detail}")


def utility_line(u) -> str:
    """One line of a utility result: the arms' AP and, when there is one, the verdict and its interval."""
    data = u.to_json()
    seeds = data.get("seeds")
    runs = data.get("runs", [])
    mean = {arm: float(np.mean([r["ap"] for r in runs if r["arm"] == arm])) if runs else float("nan")
            for arm in ("real", "real+synthetic")}
    text = f"AP real {mean['real']:.4f}, real+synthetic {mean['real+synthetic']:.4f} (seeds {seeds})"
    if data.get("verdict") is not None:
        lo, hi = data["interval"]
        text += (f"; verdict {data['verdict']}: relative median delta {data['relative_median_delta']:+.1%}, "
                 f"95% interval [{lo:+.1%}, {hi:+.1%}]")
    return text


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
