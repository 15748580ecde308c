"""The one renderer of dataset cards (Markdown) and quality reports (one self-contained HTML file:
tables, an inline SVG of the utility check, matplotlib figures and the sample grid embedded as
base64 PNG), used by generate, check and augment-rare. It renders values to text; the publisher
(vision_synth/publish.py) writes them."""

from __future__ import annotations

import base64
import html
import io
import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import yaml

from vision_synth import __version__

if TYPE_CHECKING:
    from vision_synth.quality.report import QualityReport

SET_COLORS = {"synthetic": "#d62728", "reference": "#1f77b4", "real": "#2ca02c"}


# ------------------------------------------------------------------------------------- figures
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def counts_figure(counts: dict[str, dict[str, int]]) -> str:
    plt = _pyplot()
    names = list(counts)
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 3))
    x = np.arange(len(names))
    for k, side in enumerate(("reference", "real", "synthetic")):
        ax.bar(x + (k - 1) * 0.27, [counts[n][side] for n in names], 0.27, label=side, color=SET_COLORS[side])
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("instances")
    ax.legend(frameon=False)
    ax.set_title("Instances per class")
    return _png(fig)


def histogram_figure(panels: dict[str, tuple[np.ndarray, np.ndarray]], title: str, bins: int) -> str:
    """One panel per entry (title → (synthetic values, reference values)): the histograms of the two
    sets as densities."""
    plt = _pyplot()
    names = list(panels)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        ours, theirs = panels[name]
        both = np.concatenate([ours, theirs])
        edges = np.histogram_bin_edges(both, bins=bins) if both.size else bins
        ax.hist(theirs, edges, density=True, histtype="stepfilled", alpha=0.35, color=SET_COLORS["reference"],
                label="reference")
        ax.hist(ours, edges, density=True, histtype="step", linewidth=1.5, color=SET_COLORS["synthetic"],
                label="synthetic")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes.ravel()[0].legend(frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(hspace=0.45, wspace=0.25, top=0.78 if rows == 1 else 1 - 0.25 / rows)
    return _png(fig)


def dcr_figure(normalised: np.ndarray, reference: np.ndarray, threshold: float) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 2.8))
    top = float(np.quantile(np.concatenate([normalised, reference]), 0.99)) or 1.0
    edges = np.linspace(0, top * 1.05, 30)
    ax.hist(np.clip(reference, 0, edges[-1]), edges, density=True, alpha=0.4, color=SET_COLORS["reference"],
            label="reference to nearest other reference")
    ax.hist(np.clip(normalised, 0, edges[-1]), edges, density=True, histtype="step", linewidth=1.5,
            color=SET_COLORS["synthetic"], label="synthetic to nearest reference (DCR)")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="close threshold")
    ax.set_xlabel("distance / median reference nearest-neighbour distance")
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return _png(fig)


def utility_figure(per_class: dict[str, dict[str, float]]) -> str:
    plt = _pyplot()
    names = list(per_class)
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 3))
    x = np.arange(len(names))
    ax.bar(x - 0.2, [per_class[n]["real"] for n in names], 0.4, label="real", color=SET_COLORS["real"])
    ax.bar(x + 0.2, [per_class[n]["real+synthetic"] for n in names], 0.4, label="real + synthetic",
           color=SET_COLORS["synthetic"])
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("AP (held-out real)")
    ax.legend(frameon=False)
    return _png(fig)


# ------------------------------------------------------------------------------------- utility
ARM_X = {"real": 0, "real+synthetic": 1}
VERDICT_CLASS = {"helps": "pass", "hurts": "fail", "no-evidence": "warn"}


def _arm_aps(data: dict[str, Any]) -> dict[str, dict[int, float]]:
    """arm → seed → AP, from a utility result's JSON."""
    out: dict[str, dict[int, float]] = {arm: {} for arm in ARM_X}
    for run in data.get("runs", []):
        if run["arm"] in out and run.get("ap") is not None:
            out[run["arm"]][int(run["seed"])] = float(run["ap"])
    return out


def _verdict_text(data: dict[str, Any]) -> str:
    if data.get("verdict") is None:
        return "no verdict (this utility result has no interval)"
    lo, hi = data["interval"]
    return (f"verdict: {data['verdict']} · relative median AP delta {data['relative_median_delta']:+.1%} · "
            f"{data.get('confidence', 0.95):.0%} interval [{lo:+.1%}, {hi:+.1%}]")


def utility_svg(data: dict[str, Any]) -> str:
    """An inline SVG of a utility check: per-seed AP of both arms (one point each, hollow when the
    seed collapsed), each seed's pair joined by a line (green up, red down), and on the right the
    relative median delta with its interval against 0, the verdict written above."""
    aps = _arm_aps(data)
    collapsed = {arm: set(v.get("collapsed_seeds", [])) for arm, v in (data.get("arms") or {}).items()}
    seeds = sorted(set(aps["real"]) | set(aps["real+synthetic"]))
    values = [v for arm in aps.values() for v in arm.values()]
    top = max(values + [1e-3]) * 1.15
    w, h, left, right, y0, y1 = 640, 300, 60, 330, 50, 260  # left panel x range and y range (px)
    x_of = {arm: left + 50 + k * (right - left - 100) for arm, k in ARM_X.items()}
    y_of = lambda ap: y1 - (y1 - y0) * ap / top  # noqa: E731
    e = html.escape
    out = [f'<svg class="utility-plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img" aria-label="utility: AP per seed of both arms">',
           f'<text class="verdict" x="{w / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">'
           f"{e(_verdict_text(data))}</text>",
           f'<line x1="{left}" y1="{y1}" x2="{right}" y2="{y1}" stroke="#888"/>',
           f'<line x1="{left}" y1="{y0}" x2="{left}" y2="{y1}" stroke="#888"/>',
           f'<text x="{left - 40}" y="{(y0 + y1) / 2}" font-size="11" transform="rotate(-90 {left - 40} '
           f'{(y0 + y1) / 2})" text-anchor="middle">AP on held-out real</text>']
    for frac in (0.0, 0.5, 1.0):
        y = y_of(top * frac)
        out.append(f'<text x="{left - 5}" y="{y + 4}" font-size="10" text-anchor="end">{top * frac:.3g}</text>')
    for arm, x in x_of.items():
        out.append(f'<text x="{x}" y="{y1 + 18}" font-size="12" text-anchor="middle">{e(arm)}</text>')
    for seed in seeds:
        if seed in aps["real"] and seed in aps["real+synthetic"]:
            a, b = aps["real"][seed], aps["real+synthetic"][seed]
            colour = "#2ca02c" if b > a else ("#d62728" if b < a else "#777")
            out.append(f'<line class="pair" data-seed="{seed}" x1="{x_of["real"]}" y1="{y_of(a):.1f}" '
                       f'x2="{x_of["real+synthetic"]}" y2="{y_of(b):.1f}" stroke="{colour}" stroke-width="1.5"/>')
    for arm, per_seed in aps.items():
        colour = SET_COLORS["real"] if arm == "real" else SET_COLORS["synthetic"]
        for seed, ap in sorted(per_seed.items()):
            fill = "white" if seed in collapsed.get(arm, set()) else colour
            out.append(f'<circle class="point" data-arm="{e(arm)}" data-seed="{seed}" cx="{x_of[arm]}" '
                       f'cy="{y_of(ap):.1f}" r="5" fill="{fill}" stroke="{colour}" stroke-width="1.5">'
                       f"<title>{e(arm)} seed {seed}: AP {ap:.4f}</title></circle>")
    # right panel: the relative median delta and its interval, against 0
    if data.get("interval") is not None and data.get("relative_median_delta") is not None:
        lo, hi = (float(v) for v in data["interval"])
        mid = float(data["relative_median_delta"])
        span = max(abs(lo), abs(hi), abs(mid), 0.05) * 1.2
        px0, px1, py = 380, 620, 160
        x = lambda v: px0 + (px1 - px0) * (v + span) / (2 * span)  # noqa: E731
        colour = {"helps": "#2ca02c", "hurts": "#d62728"}.get(data.get("verdict"), "#777")
        out += [f'<line x1="{px0}" y1="{py + 30}" x2="{px1}" y2="{py + 30}" stroke="#888"/>',
                f'<line x1="{x(0):.1f}" y1="{py - 40}" x2="{x(0):.1f}" y2="{py + 34}" stroke="#444" '
                'stroke-dasharray="4 3"/>',
                f'<text x="{x(0):.1f}" y="{py + 46}" font-size="10" text-anchor="middle">0</text>',
                f'<text x="{px0}" y="{py + 46}" font-size="10">{-span:+.0%}</text>',
                f'<text x="{px1}" y="{py + 46}" font-size="10" text-anchor="end">{span:+.0%}</text>',
                f'<line class="interval" x1="{x(lo):.1f}" y1="{py}" x2="{x(hi):.1f}" y2="{py}" stroke="{colour}" '
                'stroke-width="4"/>',
                f'<circle class="median" cx="{x(mid):.1f}" cy="{py}" r="6" fill="{colour}"/>',
                f'<text x="{(px0 + px1) / 2}" y="{py - 50}" font-size="12" text-anchor="middle">relative median AP '
                "delta, 95% interval</text>"]
    out.append("</svg>")
    return "".join(out)


def _utility_html(data: dict[str, Any]) -> list[str]:
    e = html.escape
    t = data.get("train") or {}
    images = data.get("images") or {}
    parts = [f'<p class="muted">{e(str(t.get("model")))}, {t.get("steps")} steps, batch {t.get("batch_size")}, '
             f'image size {t.get("image_size")}; seeds {e(str(data.get("seeds")))}; '
             + e(", ".join(f"{v} {k.replace('_', ' ')} images" for k, v in images.items()))
             + (f"; real share of each batch {data['real_share']}" if data.get("real_share") is not None else "")
             + (f"; {float(data['seconds']):.0f} s" if data.get("seconds") is not None else "") + "</p>",
             f'<p class="banner {VERDICT_CLASS.get(data.get("verdict"), "warn")}">{e(_verdict_text(data))}</p>',
             utility_svg(data),
             _table(["arm", "seed", "AP", "AP50", "train s"],
                    [[r["arm"], r["seed"], _num(r.get("ap")), _num(r.get("ap50")), _num(r.get("train_seconds"), 3)]
                     for r in data.get("runs", [])], "utility")]
    if data.get("paired"):
        parts.append(_table(["seed", "AP delta", "AP50 delta"],
                            [[p["seed"], _num(p["delta_ap"]), _num(p["delta_ap50"])] for p in data["paired"]],
                            "utility-paired"))
    if data.get("arms"):
        parts.append(_table(["arm", "median AP", "mean AP", "median AP50", "mean AP50", "collapsed seeds"],
                            [[arm, _num(a.get("median_ap")), _num(a.get("mean_ap")), _num(a.get("median_ap50")),
                              _num(a.get("mean_ap50")), ", ".join(map(str, a.get("collapsed_seeds", []))) or "none"]
                             for arm, a in data["arms"].items()], "utility-arms"))
    per_class = data.get("per_class_ap")
    if per_class:
        parts.append(_table(["class", "AP real", "AP real+synthetic", "delta"],
                            [[n, _num(v["real"]), _num(v["real+synthetic"]), _num(v["delta"])]
                             for n, v in per_class.items()], "utility-classes"))
        parts.append(_img(utility_figure(per_class), "AP per class"))
    return parts


# ------------------------------------------------------------------------------------- helpers
def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else html.escape(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """Cell HTML that is already escaped."""


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _md_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _gate_rows(report: QualityReport) -> list[list[Any]]:
    return [[g.name, g.metric, _num(g.value) if g.measured else "not measured", _num(g.threshold),
             "pass" if g.passed else "FAIL", _num(g.margin)] for g in report.gates]


def _fidelity_rows(report: QualityReport) -> list[list[Any]]:
    f = report.fidelity
    return [[f.name("FID"), _num(f.fid)], [f.name("KID") + " (mean ± std over subsets)",
                                           f"{_num(f.kid_mean)} ± {_num(f.kid_std, 2)}"],
            ["precision" + (" (proxy features)" if f.proxy else ""), _num(f.precision)],
            ["recall" + (" (proxy features)" if f.proxy else ""), _num(f.recall)],
            [f"{f.unit} (synthetic / reference)", f"{f.n_synthetic} / {f.n_reference}"],
            ["precision/recall", f.pr_note]] + ([["measured on", f.unit_note]] if f.unit_note else [])


def _proxy_warning(report: QualityReport) -> str:
    if report.fidelity is None or not report.fidelity.proxy:
        return ""
    return ("These are proxy figures (FID-proxy, KID-proxy) from a random-init Inception-v3: they are not FID "
            "or KID and cannot be compared with published values; they compare datasets checked with the same "
            "proxy seed only.")


def _memo_rows(report: QualityReport) -> list[list[Any]]:
    m = report.memorisation
    q = m.quantiles()
    rq = m.reference_quantiles()
    rows = [["synthetic images", len(m.distances)], ["training images", len(m.reference_nn)],
            ["smallest normalised DCR", _num(m.min)]]
    rows += [[f"DCR quantile {k[1:]}% (reference: {_num(rq[k])})", _num(v)] for k, v in q.items()]
    rows += [[f"fraction closer than the reference's {m.close_quantile:.0%} quantile", _num(m.close_fraction)],
             ["copies (normalised DCR ≤ " + _num(m.copy_tolerance) + ")", len(m.copies)]]
    return rows


def provenance_rows(report: QualityReport) -> list[list[Any]]:
    p = report.provenance
    rows = [[f"generator {g['generator']}", f"model {g['model'] or '-'}, hash {g['model_hash'] or '-'}: "
             f"{g['images']} images"] for g in p["generators"]]
    info = p.get("dataset_info") or {}
    for key in ("description", "version", "config_hash", "seed"):
        if key in info:
            rows.append([f"dataset {key}", info[key]])
    seeds = p["image_seeds"]
    rows.append(["image seeds", f"{seeds['count']} distinct ({seeds['min']}..{seeds['max']})"])
    if p.get("reference"):
        rows.append(["reference", f"{p['reference']['annotations']} (images {p['reference']['images']})"])
    if p.get("features"):
        feats = p["features"]
        rows.append(["features", feats["label"]])
        if feats.get("weights_sha256"):
            rows.append(["feature weights sha256", feats["weights_sha256"]])
    rows += [[f"package {name}", version or "not installed"] for name, version in p["packages"].items()]
    return rows


def _config_yaml(report: QualityReport) -> str:
    text = "# quality:\n" + yaml.safe_dump(report.spec.model_dump(mode="json"), sort_keys=False)
    if report.provenance.get("dataset_config"):
        text += "\n# dataset config:\n" + yaml.safe_dump(report.provenance["dataset_config"], sort_keys=False)
    return text


# ------------------------------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left} th{background:#f3f3f3}
.banner{padding:.8em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.pass{background:#e6f4ea;color:#1e6b34;border:1px solid #8fd19e}
.fail{background:#fdecea;color:#8a1c1c;border:1px solid #f5a3a3}
.warn{background:#fff8e1;border:1px solid #f0d98c;padding:.6em 1em;border-radius:6px}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} pre{background:#f7f7f7;padding:.8em;overflow:auto;
font-size:.8em} .muted{color:#666}
"""


def render_report(report: QualityReport, grid_png: bytes | None) -> str:
    """The self-contained report.html."""
    e = html.escape
    parts = [f"<h1>Quality report: {e(str(report.dataset_dir.name))}</h1>",
             f'<p class="muted">{e(str(report.dataset_dir))} · checked {e(report.created)} · '
             f"vision_synth {e(str(report.provenance['packages'].get('vision_synth')))}</p>"]
    if report.passed:
        parts.append('<div class="banner pass">PASSED: every gate holds; the dataset is published.</div>')
    else:
        failed = "; ".join(g.message() for g in report.failed)
        parts.append(f'<div class="banner fail">REJECTED: {e(failed)}. The dataset is not published '
                     "(annotations.rejected.json, REJECTED.md).</div>")
    warning = _proxy_warning(report)
    if warning:
        parts.append(f'<p class="warn">{e(warning)}</p>')

    parts.append("<h2>Gate</h2>")
    parts.append(_table(["gate", "metric", "value", "threshold", "result", "margin"], _gate_rows(report), "gates")
                 if report.gates else "<p>No thresholds set.</p>")

    labels = report.labels
    parts.append("<h2>Instances per class</h2>")
    parts.append(_table(["class", "reference (real)", "dataset real", "dataset synthetic"],
                        [[n, c["reference"], c["real"], c["synthetic"]] for n, c in labels.counts.items()], "counts"))
    if labels.counts:
        parts.append(_img(counts_figure(labels.counts), "instances per class"))

    if grid_png:
        parts.append("<h2>Sample grid</h2>")
        parts.append(_img(base64.b64encode(grid_png).decode("ascii"), "sample images with their labels drawn"))

    if report.fidelity is not None:
        f = report.fidelity
        parts.append(f"<h2>Fidelity ({e(f.name('FID'))}, {e(f.name('KID'))})</h2>")
        parts.append(f'<p class="muted">features: {e(f.extractor["label"])}</p>')
        parts.append(_table(["metric", "value"], _fidelity_rows(report), "fidelity"))
        if f.per_class:
            parts.append(f"<h3>Per class ({e(f.name('FID'))} of instance crops)</h3>")
            parts.append(_table(["class", f.name("FID"), "synthetic crops", "reference crops", "note"],
                                [[c.name, _num(c.fid), c.n_synthetic, c.n_reference, c.note] for c in f.per_class],
                                "class-fidelity"))

    d = report.duplicates
    parts.append("<h2>Duplicates</h2>")
    parts.append(_table(["measure", "value"], [
        ["synthetic images", d.n_images],
        ["pairs within the synthetic images", sum(p.against == "synthetic" for p in d.pairs)],
        ["pairs with a reference image", sum(p.against == "reference" for p in d.pairs)],
        ["images flagged", f"{len(d.flagged)} ({d.found_fraction:.1%})"], ["action", d.action],
        ["images removed", len(d.removed)], ["flagged among published images", f"{d.remaining_fraction:.1%}"]],
        "duplicates"))
    if d.pairs:
        parts.append(_table(["image", "duplicate of", "set", "method", "value"],
                            [[p.image_id, p.other_id, p.against, p.method, _num(p.value)] for p in d.pairs[:100]],
                            "duplicate-pairs"))

    parts.append("<h2>Labels</h2>")
    parts.append(_table(["check", "issues"], [[k, v] for k, v in labels.issues_by_kind.items()] or [["all checks", 0]],
                        "label-issues"))
    if labels.examples:
        parts.append(_table(["annotation", "image", "issue", "detail"],
                            [[x.annotation_id, x.image_id, x.kind, x.detail] for x in labels.examples[:20]]))
    if labels.distances:
        rows = [[name, stat, _num(v["wasserstein"]), _num(v["ks"]), v["n_synthetic"], v["n_reference"]]
                for name, stats in labels.distances.items() for stat, v in stats.items()]
        parts.append("<h3>Box size and position against the reference</h3>")
        parts.append(_table(["class", "statistic", "Wasserstein", "KS", "n synthetic", "n reference"], rows,
                            "distributions"))
        bins = report.spec.labels.bins
        sizes = {name: v["size"] for name, v in labels.values.items()}
        parts.append(_img(histogram_figure(sizes, "Box size: √(box area / image area), per class", bins),
                          "box-size histograms"))
        positions = {label: labels.values["all"][stat] for stat, label in (("x", "centre x / width"),
                                                                          ("y", "centre y / height"))}
        parts.append(_img(histogram_figure(positions, "Box position, all classes (per class: table above)", bins),
                          "box position histograms"))

    if report.memorisation is not None:
        m = report.memorisation
        parts.append("<h2>Memorisation (distance to closest record)</h2>")
        parts.append(_table(["measure", "value"], _memo_rows(report), "memorisation"))
        reference_nn = m.reference_nn / m.scale if m.scale > 0 else m.reference_nn
        parts.append(_img(dcr_figure(m.normalised, reference_nn, m.threshold / m.scale if m.scale > 0 else 0.0),
                          "DCR histogram"))

    if report.utility is not None:
        parts.append("<h2>Utility (train on real, and on real + synthetic; test on real)</h2>")
        parts += _utility_html(report.utility.to_json())

    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report.notes) + "</ul>")
    parts.append("<h2>Provenance</h2>")
    parts.append(_table(["item", "value"], provenance_rows(report), "provenance"))
    parts.append("<h2>Config</h2>")
    parts.append(f"<pre>{e(_config_yaml(report))}</pre>")
    parts.append("<h2>Time</h2>")
    parts.append(_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in report.seconds.items()], "timing"))
    title = f"{'PASSED' if report.passed else 'REJECTED'} · quality report · {report.dataset_dir.name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


# ------------------------------------------------------------------------------------- card
INTENDED_USE = ("Synthetic data supplements real data; it does not replace it. Keep a pure-real evaluation split "
                "and report the synthetic share of every training set.")


@dataclass(frozen=True)
class CardFacts:
    """What a dataset card says whatever made the dataset: a title, what made it, per-class counts,
    and its config. A check's QualityReport adds the quality sections."""

    title: str
    about: list[str] = field(default_factory=list)  # paragraphs
    provenance: list[list[Any]] = field(default_factory=list)  # [item, value] rows
    count_headers: list[str] = field(default_factory=list)
    counts: list[list[Any]] = field(default_factory=list)
    config_yaml: str | None = None
    created: str = ""
    sections: list[str] = field(default_factory=list)  # markdown sections of the generator's own (diffusion)


def _created() -> str:
    return (f"Created {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by vision_synth {__version__} "
            f"(Python {platform.python_version()}).")


def generation_facts(config, per_class: dict[str, int]) -> CardFacts:
    """The card facts of a `vision-synth generate` run of `config`."""
    d = config.diffusion
    diffusion = "" if d is None else (f"; diffusion `{d.mode}` with `{d.model}`"
                                      + (f", ControlNet `{d.controlnet}`" if d.controlnet else "")
                                      + f", {d.steps} steps, scheduler {d.scheduler}")
    return CardFacts(
        title=config.name,
        about=["Every image and annotation is synthetic (`\"synthetic\": true` in annotations.json); labels are "
               "derived from the compositing itself: bbox = extent of the visible mask, area = its pixel count."],
        provenance=[["generator", f"`{config.generator}` (scene `{config.scene.name or 'inline'}`{diffusion})"],
                    ["config hash", f"`{config.config_hash()}`"], ["seed", f"`{config.seed}`"],
                    ["images", f"{config.num_images}, {config.image.width}×{config.image.height} "
                               f"{config.image.format}"]],
        count_headers=["class", "real", "synthetic"], counts=[[name, 0, n] for name, n in per_class.items()],
        config_yaml=yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), created=_created())


def report_facts(report: QualityReport) -> CardFacts:
    """The card facts of a dataset known only through its check (vision-synth check on a directory)."""
    p = report.provenance
    info = p.get("dataset_info") or {}
    return CardFacts(
        title=info.get("description") or report.dataset_dir.name, provenance=provenance_rows(report),
        count_headers=["class", "reference (real)", "dataset real", "dataset synthetic"],
        counts=[[n, c["reference"], c["real"], c["synthetic"]] for n, c in report.labels.counts.items()],
        config_yaml=_config_yaml(report),
        created=f"Checked {report.created} by vision_synth {p['packages'].get('vision_synth')} "
                f"(Python {p['packages'].get('python')}).")


def render_card(facts: CardFacts, report: QualityReport | None = None) -> str:
    """dataset_card.md (dataset_card.rejected.md when the gate failed): `facts`, and with a check's
    `report` its verdict and figures."""
    created = facts.created or _created()
    if report is not None:
        status = ("**Quality gate: PASSED** (published)" if report.passed else
                  "**REJECTED: not published** — failed gates: "
                  + "; ".join(g.message() for g in report.failed) + ". See REJECTED.md.")
        created += f" {status}"
    sections = [f"# Dataset card: {facts.title}", "", created, ""]
    if report is not None:
        sections += ["Full figures, histograms and a sample grid with the labels drawn: `report.html`; "
                     "machine-readable: `quality.json`.", ""]
    for paragraph in facts.about:
        sections += [paragraph, ""]
    sections += ["## Provenance", _md_table(["item", "value"], facts.provenance), ""]
    if report is not None:
        sections += ["## Instances per class", _md_table(
            ["class", "reference (real)", "dataset real", "dataset synthetic"],
            [[n, c["reference"], c["real"], c["synthetic"]] for n, c in report.labels.counts.items()]), ""]
    elif facts.counts:
        sections += ["## Instances per class", _md_table(facts.count_headers, facts.counts), ""]
    if report is not None:
        sections += _quality_sections(report)
    sections += [part.strip() + "\n" for part in facts.sections]
    sections += ["## Intended use", INTENDED_USE, ""]
    config = _config_yaml(report) if report is not None else facts.config_yaml
    if config:
        sections += ["## Config", "```yaml", config.rstrip(), "```", ""]
    return "\n".join(sections)


def _quality_sections(report: QualityReport) -> list[str]:
    sections = []
    if report.gates:
        sections += ["## Quality gate", _md_table(["gate", "metric", "value", "threshold", "result", "margin"],
                                                  _gate_rows(report)), ""]
    if report.fidelity is not None:
        f = report.fidelity
        sections += [f"## Fidelity ({f.name('FID')})", f"Features: {f.extractor['label']}."]
        if _proxy_warning(report):
            sections += ["", _proxy_warning(report)]
        sections += ["", _md_table(["metric", "value"], _fidelity_rows(report)), ""]
        if f.per_class:
            sections += [_md_table(["class", f.name("FID"), "synthetic crops", "reference crops", "note"],
                                   [[c.name, _num(c.fid), c.n_synthetic, c.n_reference, c.note] for c in f.per_class]),
                         ""]
    d = report.duplicates
    sections += ["## Duplicates",
                 f"{len(d.flagged)} of {d.n_images} synthetic images flagged as near-duplicates "
                 f"({sum(x.against == 'reference' for x in d.pairs)} pairs with reference images); action "
                 f"`{d.action}`, {len(d.removed)} removed.", ""]
    sections += ["## Labels", f"{report.labels.issues} label issues"
                 + (": " + ", ".join(f"{k} {v}" for k, v in report.labels.issues_by_kind.items())
                    if report.labels.issues else "") + ".", ""]
    if report.labels.distances:
        sections += [_md_table(["class", "box size KS", "box size Wasserstein", "centre x KS", "centre y KS"],
                               [[n, _num(s["size"]["ks"]), _num(s["size"]["wasserstein"]), _num(s["x"]["ks"]),
                                 _num(s["y"]["ks"])] for n, s in report.labels.distances.items()]), ""]
    if report.memorisation is not None:
        sections += ["## Memorisation (distance to closest record)", _md_table(["measure", "value"],
                                                                                _memo_rows(report)), ""]
    if report.utility is not None:
        data = report.utility.to_json()
        t = data.get("train") or {}
        sections += ["## Utility (train on real, and on real + synthetic; test on real)",
                     f"`{t.get('model')}`, {t.get('steps')} steps, image size {t.get('image_size')}, seeds "
                     f"{data.get('seeds')}. {_verdict_text(data)}.", "",
                     _md_table(["arm", "seed", "AP", "AP50"], [[r["arm"], r["seed"], _num(r.get("ap")),
                                                               _num(r.get("ap50"))] for r in data.get("runs", [])]),
                     ""]
    if report.notes:
        sections += ["## Notes", *[f"- {n}" for n in report.notes], ""]
    return sections


def rejection_note(report: QualityReport) -> str:
    """REJECTED.md: which gates failed, by how much, and how to check again."""
    lines = "\n".join(f"- **{g.name}**: {g.message()}" for g in report.failed)
    return f"""# REJECTED: this dataset did not pass the quality gate

`{report.dataset_dir}` is not published. Its annotations are kept as `annotations.rejected.json`
(split files as `annotations_*.rejected.json`); no `annotations.json` exists until a check passes.

## Failed gates
{lines}

Details: `quality.json` and `report.html` in this directory.

## What next
Fix the data (or, with reason, the thresholds in the `quality:` config) and check again:

    {report.command}

A passing check renames the files back and removes this note.
"""


def sample_grid(annotations: Path, images_dir: Path, count: int) -> bytes | None:
    """PNG bytes of the first `count` images with their labels drawn (vision_synth.preview)."""
    if count <= 0:
        return None
    import tempfile

    from vision_synth.preview import render_preview

    with tempfile.TemporaryDirectory(prefix="vision_synth_grid_") as tmp:
        out = render_preview(annotations, images_dir, Path(tmp) / "grid.png", max_images=count, tile=192)
        return out.read_bytes()


# ------------------------------------------------------------------------------------- tune
RUNG_COLORS = ("#9e9e9e", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b")


def setting_label(value: Any) -> str:
    """A searched value as the tables show it (a data set by its folder and file name)."""
    if isinstance(value, dict) and "coco" in value:
        return "/".join(Path(str(value["coco"])).parts[-2:])
    return value if isinstance(value, str) else json.dumps(value)


def parameter_svg(key: str, dimension: Any, trials: list[dict[str, Any]], winner: int | None) -> str:
    """An inline SVG of one searched key: every trial's relative median delta (its 95% interval as a
    bar) against the trial's value of `key`, coloured by the last rung it reached, the winner ringed,
    0 dashed. Categorical keys (choices) get one column a choice."""
    e = html.escape
    w, h, left, right, top, bottom = 420, 250, 56, 405, 30, 200
    points = [t for t in trials if t.get("relative_median_delta") is not None]
    values = [v for t in points for v in (t["relative_median_delta"], *(t.get("interval") or [])) if v is not None]
    span = max([abs(v) for v in values] + [0.05]) * 1.1
    y_of = lambda v: bottom - (bottom - top) * (v + span) / (2 * span)  # noqa: E731
    out = [f'<svg class="parameter-plot" data-key="{e(key)}" xmlns="http://www.w3.org/2000/svg" width="{w}" '
           f'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="relative median delta against {e(key)}">',
           f'<text x="{(left + right) / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">{e(key)}</text>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#888"/>',
           f'<line x1="{left}" y1="{y_of(0):.1f}" x2="{right}" y2="{y_of(0):.1f}" stroke="#444" stroke-dasharray="4 3"/>']
    for v in (-span, 0.0, span):
        out.append(f'<text x="{left - 5}" y="{y_of(v) + 4:.1f}" font-size="10" text-anchor="end">{v:+.0%}</text>')
    choices = getattr(dimension, "choices", None)
    if choices is not None:
        labels = [setting_label(c) for c in choices]
        step = (right - left) / len(choices)
        slot = {json.dumps(c, sort_keys=True): k for k, c in enumerate(choices)}
        for k, label in enumerate(labels):
            out.append(f'<text x="{left + step * (k + 0.5):.1f}" y="{bottom + 16}" font-size="10" '
                       f'text-anchor="middle">{e(label[:max(int(step // 6), 6)])}</text>')
        seen: dict[int, int] = {}

        def x_of(value: Any) -> float:
            k = slot.get(json.dumps(value, sort_keys=True), 0)
            n = seen[k] = seen.get(k, 0) + 1
            return left + step * (k + 0.5) + (n - 1) % 7 * 6 - 18
    else:
        low, high = (float(v) for v in dimension.range)
        log = bool(getattr(dimension, "log", False))
        f = (lambda v: np.log(v)) if log else (lambda v: v)  # noqa: E731
        x_of = lambda v: left + 10 + (right - left - 20) * (f(float(v)) - f(low)) / (f(high) - f(low))  # noqa: E731
        for v in (low, high):
            out.append(f'<text x="{x_of(v):.1f}" y="{bottom + 16}" font-size="10" text-anchor="middle">{v:.4g}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{bottom + 34}" font-size="11" text-anchor="middle">'
               "relative median AP delta (95% interval) · colour: last rung reached</text>")
    for t in points:
        x = x_of(t["settings"][key])
        colour = RUNG_COLORS[min(int(t.get("rung", 0)), len(RUNG_COLORS) - 1)]
        lo, hi = t.get("interval") or (None, None)
        if lo is not None and hi is not None:
            out.append(f'<line x1="{x:.1f}" y1="{y_of(max(lo, -span)):.1f}" x2="{x:.1f}" y2="{y_of(min(hi, span)):.1f}" '
                       f'stroke="{colour}" stroke-width="2" opacity="0.6"/>')
        ring = ' stroke="#000" stroke-width="2"' if t["trial"] == winner else ""
        out.append(f'<circle class="trial" data-trial="{t["trial"]}" cx="{x:.1f}" '
                   f'cy="{y_of(t["relative_median_delta"]):.1f}" r="4.5" fill="{colour}"{ring}>'
                   f'<title>trial {t["trial"]}: {e(setting_label(t["settings"][key]))}, delta '
                   f'{t["relative_median_delta"]:+.1%} over {len(t.get("seeds", []))} seeds</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _tune_rows(summary: dict[str, Any], trials: list[dict[str, Any]], keys: list[str]) -> list[list[Any]]:
    by_index = {t["trial"]: t for t in trials}
    rows = []
    for rank, k in enumerate(summary["ranking"], 1):
        t = by_index[k]
        lo, hi = t["interval"]
        rows.append([rank, k, *[setting_label(t["settings"][key]) for key in keys], t["rung"], len(t["seeds"]),
                     _pct(t["relative_median_delta"]), f"{_pct(lo)} to {_pct(hi)}", t["verdict"]])
    return rows


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):+.1%}"


def _tune_about(summary: dict[str, Any]) -> list[str]:
    n = summary["trials_tried"]
    rungs = "; ".join(f"rung {r['rung']}: {r['trials']} trials × {len(r['seeds'])} seeds" for r in summary["rungs"])
    c = summary["confirmation"]
    return [f"{n} settings were tried ({rungs}). The search figure of the top trial is the best of {n} "
            "measured on the same val images, so it is optimistic; the figure to quote is the confirmation: the "
            f"top trial measured again on {len(c['seeds'])} fresh seeds (never used by the search), scored on "
            f"{c['on']}" + (" (images the search never saw)." if c["on"] == "test" else
                            ". Val itself was used to choose it: for an estimate free of that choice, keep a "
                            "test set out of the search (`test:` in the spec)."),
            "val never feeds generation or training: no val image (by content) is among the images the "
            "candidates are made from or the detector trains on."]


def render_tune_card(summary: dict[str, Any], table_md: str) -> str:
    """tune_card.md: the result, how many settings were tried, the table and the settings of the top trial."""
    facts = CardFacts(
        title=f"tune of {Path(summary['base']['config']).name}",
        about=[f"**{summary['result']}**", *_tune_about(summary)],
        provenance=[["spec", f"`{summary['spec']}` (digest `{summary['spec_digest']}`)"],
                    ["base", f"{summary['base']['kind']} `{summary['base']['config']}`"],
                    ["trials tried", summary["trials_tried"]],
                    ["confirmation", f"{summary['verdict']} on {summary['confirmation']['on']}, seeds "
                                     f"{summary['confirmation']['seeds']}"],
                    ["run the top setting", f"`{summary['command']}`"]],
        config_yaml=yaml.safe_dump({"winner": summary["winner"]}, sort_keys=False),
        created=f"Made by vision_synth {summary['version']} (`vision-synth tune`).",
        sections=["## Trials (sorted by relative median delta)\n\n" + table_md])
    return render_card(facts)


def render_tune_report(summary: dict[str, Any], trials: list[dict[str, Any]], space: dict[str, Any]) -> str:
    """The self-contained report.html of a tune run: the result, the confirmation run (every seed),
    the table of trials sorted by median delta with intervals, and the delta against each key."""
    e = html.escape
    keys = list(space)
    c = summary["confirmation"]
    found = summary["found"]
    parts = [f"<h1>Tune: {e(Path(summary['base']['config']).name)}</h1>",
             f'<p class="muted">{e(summary["spec"])} · {summary["base"]["kind"]} base · vision_synth '
             f'{e(summary["version"])}</p>',
             f'<div class="banner {"pass" if found else "warn"}">{e(summary["result"])}</div>',
             *[f"<p>{e(p)}</p>" for p in _tune_about(summary)]]
    if found:
        parts.append(f"<p>The winner's base with its settings: <code>best.yaml</code>; run it with "
                     f"<code>{e(summary['command'])}</code>.</p>")
    else:
        parts.append("<p>No file names a winner. The top trial's settings are in <code>top_trial.yaml</code> "
                     "(not confirmed).</p>")
    parts.append(f"<h2>Confirmation: trial {summary['winner']['trial']} on fresh seeds</h2>")
    parts += _utility_html(c)
    parts.append("<h2>Trials, sorted by relative median delta</h2>")
    parts.append(_table(["rank", "trial", *keys, "rung", "seeds", "relative median delta", "95% interval", "verdict"],
                        _tune_rows(summary, trials, keys), "trials"))
    parts.append("<h2>Delta against each key</h2>")
    parts.append("".join(parameter_svg(k, space[k], trials, summary["winner"]["trial"]) for k in keys))
    parts.append("<h2>Every seed of every trial</h2>")
    parts.append(_table(["trial", "seed", "AP real", "AP real+synthetic", "AP50 real", "AP50 real+synthetic"],
                        [[t["trial"], r["seed"], _num(r["real_ap"]), _num(r["ap"]), _num(r["real_ap50"]),
                          _num(r["ap50"])] for t in trials for r in t["runs"]], "trial-seeds"))
    if summary.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in summary["notes"]) + "</ul>")
    title = f"{'FOUND' if found else 'NOTHING FOUND'} · tune · {Path(summary['base']['config']).name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
