"""The gate: one table of every gate (name, metric, direction, where its threshold is set, what it
needs measured), read by the spec's validation, by the check and by the report.

A gate whose metric could not be measured is reported "not measured" and fails: a gate that was
asked for is never passed by default. The published or rejected state that follows is written by
vision_synth/publish.py, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from vision_synth.errors import VisionSynthError

# what a gate needs measured, checked against the quality section (spec validation, check inputs)
NEEDS_INCEPTION, NEEDS_PROXY, NEEDS_FEATURES, NEEDS_PER_CLASS = "inception", "proxy", "features", "per_class"
NEEDS_MEMORISATION, NEEDS_UTILITY = "memorisation", "utility"
VERDICTS = ("helps", "no-evidence", "hurts")


class GateFailed(VisionSynthError):
    """The dataset broke a quality threshold: it is left unpublished (rejected state), exit code 3."""

    exit_code = 3


def _class_fid(m) -> float | None:
    values = [c.fid for c in m.fidelity.per_class if c.fid is not None] if m.fidelity else []
    return max(values) if values else None


def _fidelity(attr: str) -> Callable[[Any], float | None]:
    return lambda m: getattr(m.fidelity, attr) if m.fidelity is not None else None


def _memo(attr: str) -> Callable[[Any], float | None]:
    return lambda m: getattr(m.memorisation, attr) if m.memorisation is not None else None


def _proxy(name: str) -> Callable[[bool], str]:
    return lambda proxy: name + (" (proxy features)" if proxy else "")


@dataclass(frozen=True)
class Gate:
    """One gate. `key`: where its threshold is set in the quality section; `direction`: `max` (the
    value must not exceed it), `min` (must reach it) or `verdict` (the utility verdict must be one the
    threshold accepts); `figure`: the measured value from a report's measurements (None: not
    measured); `needs`: what the section must compute for the gate to make sense."""

    name: str
    key: str
    metric: Callable[[bool], str]  # proxy features? → the metric's name in reports
    direction: str
    figure: Callable[[Any], Any]
    needs: tuple[str, ...] = ()
    proxy_twin: str | None = None  # the gate to use instead with proxy features


GATES: tuple[Gate, ...] = (
    Gate("fid_max", "gate.fid_max", lambda p: "FID", "max", _fidelity("fid"), (NEEDS_INCEPTION,), "fid_proxy_max"),
    Gate("kid_max", "gate.kid_max", lambda p: "KID", "max", _fidelity("kid_mean"), (NEEDS_INCEPTION,),
         "kid_proxy_max"),
    Gate("fid_proxy_max", "gate.fid_proxy_max", lambda p: "FID-proxy", "max", _fidelity("fid"), (NEEDS_PROXY,)),
    Gate("kid_proxy_max", "gate.kid_proxy_max", lambda p: "KID-proxy", "max", _fidelity("kid_mean"), (NEEDS_PROXY,)),
    Gate("class_fid_max", "gate.class_fid_max", lambda p: f"largest per-class {'FID-proxy' if p else 'FID'}", "max",
         _class_fid, (NEEDS_FEATURES, NEEDS_PER_CLASS)),
    Gate("min_precision", "gate.min_precision", _proxy("precision"), "min", _fidelity("precision"), (NEEDS_FEATURES,)),
    Gate("min_recall", "gate.min_recall", _proxy("recall"), "min", _fidelity("recall"), (NEEDS_FEATURES,)),
    Gate("min_utility_delta_ap", "gate.min_utility_delta_ap", lambda p: "AP(real+synthetic) − AP(real)", "min",
         lambda m: m.utility.delta_ap if m.utility is not None else None, (NEEDS_UTILITY,)),
    Gate("utility", "utility.require", lambda p: "utility verdict", "verdict",
         lambda m: m.utility.verdict if m.utility is not None else None, (NEEDS_UTILITY,)),
    Gate("max_duplicate_fraction", "gate.max_duplicate_fraction", lambda p: "duplicate fraction (published images)",
         "max", lambda m: m.duplicates.remaining_fraction),
    Gate("min_dcr", "gate.min_dcr", lambda p: "smallest normalised DCR", "min", _memo("min"),
         (NEEDS_FEATURES, NEEDS_MEMORISATION)),
    Gate("max_dcr_close_fraction", "gate.max_dcr_close_fraction",
         lambda p: "fraction of images closer than the reference's close quantile", "max", _memo("close_fraction"),
         (NEEDS_FEATURES, NEEDS_MEMORISATION)),
    Gate("max_label_issues", "gate.max_label_issues", lambda p: "label issues", "max",
         lambda m: float(m.labels.issues)),
    Gate("max_box_size_ks", "gate.max_box_size_ks", lambda p: "largest per-class KS statistic of box size", "max",
         lambda m: m.labels.max_ks("size")),
)
BY_NAME = {g.name: g for g in GATES}


def threshold_of(gate: Gate, spec) -> Any:
    """The gate's threshold as set in a QualitySpec (None: the gate is off)."""
    node = spec
    for part in gate.key.split("."):
        node = getattr(node, part, None)
    return node


def set_gates(spec) -> list[tuple[Gate, Any]]:
    """(gate, threshold) of every gate the section turns on, in table order."""
    return [(g, t) for g in GATES if (t := threshold_of(g, spec)) is not None]


def accepts(require: str, verdict: str) -> bool:
    """`require: helps` accepts only helps; `require: no-evidence` refuses only hurts."""
    return verdict == "helps" if require == "helps" else verdict != "hurts"


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: `value` against `threshold` (`kind` max, min or verdict); `margin` is how far
    a number lies on the failing side (positive = failed by that much)."""

    name: str
    metric: str
    kind: str
    threshold: float | str
    value: float | str | None
    passed: bool
    detail: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None and not (isinstance(self.value, float) and math.isnan(self.value))

    @property
    def margin(self) -> float | None:
        if not self.measured or self.kind == "verdict":
            return None
        return self.value - self.threshold if self.kind == "max" else self.threshold - self.value

    def message(self) -> str:
        if not self.measured:
            return f"{self.name}: {self.metric} not measured (required: fails)"
        if self.kind == "verdict":
            detail = f" ({self.detail})" if self.detail else ""
            return (f"{self.name}: {self.metric} {self.value}{detail}, require {self.threshold} "
                    f"({'ok' if self.passed else 'fails'})")
        sign = "<=" if self.kind == "max" else ">="
        if self.passed:
            return f"{self.name}: {self.metric} {_fmt(self.value)} {sign} {_fmt(self.threshold)} (ok)"
        broken = ">" if self.kind == "max" else "<"
        return (f"{self.name}: {self.metric} {_fmt(self.value)} {broken} {_fmt(self.threshold)} "
                f"(fails by {_fmt(self.margin)})")

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.name, "metric": self.metric, "kind": self.kind, "threshold": self.threshold,
                "value": self.value, "measured": self.measured, "passed": self.passed, "margin": self.margin,
                "message": self.message()}


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def check_gate(name: str, metric: str, kind: str, threshold: float | str, value: float | str | None,
               detail: str = "") -> GateResult:
    """A threshold compared with a value; a missing value fails (the gate asked for a figure that was
    not measured)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GateResult(name, metric, kind, threshold, None, False, detail)
    if kind == "verdict":
        return GateResult(name, metric, kind, str(threshold), str(value), accepts(str(threshold), str(value)), detail)
    passed = value <= threshold if kind == "max" else value >= threshold
    return GateResult(name, metric, kind, float(threshold), float(value), bool(passed), detail)


def utility_detail(utility) -> str:
    """How the verdict was reached: the relative median delta and its interval."""
    delta = getattr(utility, "relative_median_delta", None)
    interval = getattr(utility, "interval", None)
    if delta is None or interval is None:
        return ""
    lo, hi = interval
    return f"relative median AP delta {delta:+.1%}, 95% interval [{lo:+.1%}, {hi:+.1%}]"


def evaluate(spec, measured, proxy: bool) -> list[GateResult]:
    """Every gate the quality section `spec` turns on, against the figures of `measured` (anything
    with the report's measurement attributes: fidelity, memorisation, utility, labels, duplicates)."""
    results = []
    for gate, threshold in set_gates(spec):
        detail = utility_detail(measured.utility) if gate.name == "utility" and measured.utility else ""
        results.append(check_gate(gate.name, gate.metric(proxy), gate.direction, threshold, gate.figure(measured),
                                  detail))
    return results


def spec_problems(spec) -> list[str]:
    """What the section asks of a gate that it does not compute, one line each (spec validation)."""
    features, problems = spec.fidelity.features, []
    for gate, _ in set_gates(spec):
        where = gate.key if gate.key.startswith("gate.") else gate.key
        for need in gate.needs:
            if need == NEEDS_INCEPTION and features != "inception":
                hint = f"; with fidelity: proxy use gate.{gate.proxy_twin}" if features == "proxy" else ""
                problems.append(f"{where} needs fidelity.features: inception (the real FID weights){hint}")
            elif need == NEEDS_PROXY and features != "proxy":
                problems.append(f"{where} needs fidelity.features: proxy")
            elif need == NEEDS_FEATURES and features == "off":
                problems.append(f"{where} needs fidelity.features: inception or proxy")
            elif need == NEEDS_PER_CLASS and not spec.fidelity.per_class:
                problems.append(f"{where} needs fidelity.per_class: true")
            elif need == NEEDS_MEMORISATION and spec.memorisation.enabled is False:
                problems.append(f"{where} needs memorisation.enabled: true or auto")
    return problems
