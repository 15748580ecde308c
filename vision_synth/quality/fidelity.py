"""Fidelity of synthetic images to a reference set, from features: Fréchet distance (FID), kernel
inception distance (KID), and precision/recall of the two distributions (Kynkäänniemi et al. 2019).

The metrics are the standard formulas over features; the features (Inception-v3 or the proxy) come
from vision_synth/quality/features.py. With proxy features every name carries "proxy" (FID-proxy,
KID-proxy; keys fid_proxy, kid_proxy, ...): they are never reported as FID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vision_synth.quality.neighbours import nearest, within_any_ball


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) of two feature sets (rows are samples).

    Tr((Σa Σb)^½) is the sum of singular values of Xa Xbᵀ / √((na−1)(nb−1)) (X centred) when the
    sets are smaller than the feature dimension, else the sum of √eigenvalues of Σa^½ Σb Σa^½: both
    exact, neither needs a general matrix square root.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 samples a side, got {len(a)} and {len(b)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa, xb = a - mu_a, b - mu_b
    na, nb, dim = len(a), len(b), a.shape[1]
    trace_a = float((xa * xa).sum() / (na - 1))
    trace_b = float((xb * xb).sum() / (nb - 1))
    if max(na, nb) <= dim:
        cross = xa @ xb.T / np.sqrt((na - 1) * (nb - 1))
        trace_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    else:
        cov_a = xa.T @ xa / (na - 1)
        cov_b = xb.T @ xb / (nb - 1)
        w, v = np.linalg.eigh(cov_a)
        root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        product = root_a @ cov_b @ root_a
        trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + trace_a + trace_b - 2.0 * trace_sqrt)
    return max(value, 0.0)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subset_size: int, subsets: int,
                              rng: np.random.Generator) -> tuple[float, float]:
    """Mean and std over random subsets of the unbiased MMD² with the cubic polynomial kernel
    k(x, y) = (xᵀy / d + 1)³ (Bińkowski et al. 2018). Subsets are drawn without replacement, of
    min(subset_size, na, nb) samples each, with `rng` (the caller's own stream: no default)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples a side, got {len(a)} and {len(b)}")
    dim = a.shape[1]
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        off = m * (m - 1)
        values[s] = ((k_xx.sum() - np.trace(k_xx)) / off + (k_yy.sum() - np.trace(k_yy)) / off
                     - 2.0 * k_xy.mean())
    return float(values.mean()), float(values.std())


def precision_recall(reference: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the share of generated samples inside
    the reference manifold (union of balls reaching each reference sample's k-th neighbour) and the
    share of reference samples inside the generated manifold."""
    radii_ref, _ = nearest(reference, reference, k, exclude_self=True)
    radii_gen, _ = nearest(generated, generated, k, exclude_self=True)
    precision = float(within_any_ball(generated, reference, radii_ref).mean())
    recall = float(within_any_ball(reference, generated, radii_gen).mean())
    return precision, recall


def metric_name(base: str, proxy: bool) -> str:
    """How a metric is called in reports: 'FID' or 'FID-proxy'."""
    return f"{base}-proxy" if proxy else base


def metric_key(base: str, proxy: bool) -> str:
    """Its key in quality.json: 'fid' or 'fid_proxy'."""
    return f"{base}_proxy" if proxy else base


@dataclass(frozen=True)
class ClassFidelity:
    name: str
    n_synthetic: int
    n_reference: int
    fid: float | None
    note: str = ""


@dataclass(frozen=True)
class FidelityResult:
    proxy: bool
    extractor: dict[str, Any]
    n_synthetic: int
    n_reference: int
    fid: float
    kid_mean: float
    kid_std: float
    precision: float | None
    recall: float | None
    pr_note: str = ""
    per_class: list[ClassFidelity] = field(default_factory=list)
    unit: str = "images"  # or "tiles": too few reference images, the statistics ran on tiles of both sides
    unit_note: str = ""

    def name(self, base: str) -> str:
        return metric_name(base, self.proxy)

    def to_json(self) -> dict[str, Any]:
        key = lambda base: metric_key(base, self.proxy)  # noqa: E731
        return {
            "features": "proxy" if self.proxy else "inception",
            "metric_names": {key(b): self.name(n) for b, n in (("fid", "FID"), ("kid", "KID"),
                                                               ("precision", "precision"),
                                                               ("recall", "recall"))},
            "extractor": self.extractor,
            "unit": self.unit,
            "unit_note": self.unit_note or None,
            self.unit: {"synthetic": self.n_synthetic, "reference": self.n_reference},
            key("fid"): self.fid,
            key("kid"): {"mean": self.kid_mean, "std": self.kid_std},
            key("precision"): self.precision,
            key("recall"): self.recall,
            "precision_recall_note": self.pr_note or None,
            "per_class": {c.name: {key("fid"): c.fid, "synthetic_crops": c.n_synthetic,
                                   "reference_crops": c.n_reference, "note": c.note or None}
                          for c in self.per_class},
        }


def measure_fidelity(synthetic: np.ndarray, reference: np.ndarray, *, proxy: bool, extractor: dict[str, Any],
                     rng: np.random.Generator, kid_subset_size: int = 1000, kid_subsets: int = 100, pr_k: int = 3,
                     pr_min_samples: int = 50, class_features: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                     min_crops: int = 10, unit: str = "images", unit_note: str = "") -> FidelityResult:
    """FID, KID (subsets drawn with `rng`) and (with at least `pr_min_samples` a side) precision/recall
    of the features of images (or of tiles, `unit`); FID per class of crop features
    {name: (synthetic, reference)} with `min_crops` a side."""
    fid = frechet_distance(synthetic, reference)
    kid_mean, kid_std = kernel_inception_distance(synthetic, reference, kid_subset_size, kid_subsets, rng)
    precision = recall = None
    enough = min(len(synthetic), len(reference))
    if enough >= max(pr_min_samples, pr_k + 1):
        precision, recall = precision_recall(reference, synthetic, pr_k)
        pr_note = f"k={pr_k}"
    else:
        pr_note = f"not computed: {enough} {unit} on the smaller side, fewer than pr_min_samples={pr_min_samples}"
    per_class = []
    for name, (syn, ref) in (class_features or {}).items():
        if min(len(syn), len(ref)) < min_crops:
            per_class.append(ClassFidelity(name, len(syn), len(ref), None,
                                           f"too few crops (fewer than min_crops_per_class={min_crops})"))
        else:
            per_class.append(ClassFidelity(name, len(syn), len(ref), frechet_distance(syn, ref)))
    return FidelityResult(proxy, extractor, len(synthetic), len(reference), fid, kid_mean, kid_std, precision,
                          recall, pr_note, per_class, unit, unit_note)
