"""Memorisation: distance to closest record (DCR) of generated samples to a generator's training set.

For each generated sample (an image or an instance crop, as features) the Euclidean distance to its
nearest training sample, set against the training set's own leave-one-out nearest-neighbour
distances: a generator that copies lands far below them. Distances are also given normalised by
the median of the training set's own distances (1.0 = as near as two training samples usually
are), so thresholds hold across feature extractors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vision_synth.quality.neighbours import nearest

QUANTILES = (0.01, 0.05, 0.25, 0.5)


@dataclass(frozen=True, eq=False)
class DCRResult:
    """`distances[i]`: generated sample i to its nearest training sample `nearest[i]`;
    `reference_nn`: each training sample to its nearest other training sample; `scale`: the median of
    those; `threshold`: their `close_quantile` quantile: a generated sample nearer than that is
    "close" (about `close_quantile` of samples are, when nothing is memorised)."""

    distances: np.ndarray
    nearest: np.ndarray
    reference_nn: np.ndarray
    scale: float
    threshold: float
    close_quantile: float
    copy_tolerance: float

    @property
    def normalised(self) -> np.ndarray:
        return self.distances / self.scale if self.scale > 0 else np.where(self.distances > 0, np.inf, 0.0)

    @property
    def min(self) -> float:
        """Smallest normalised DCR."""
        return float(self.normalised.min())

    @property
    def close(self) -> np.ndarray:
        """Whether each generated sample is nearer its closest record than the threshold."""
        return self.distances < self.threshold

    @property
    def close_fraction(self) -> float:
        return float(self.close.mean())

    @property
    def copies(self) -> np.ndarray:
        """Indices of generated samples within `copy_tolerance` (normalised) of a training sample."""
        return np.flatnonzero(self.normalised <= self.copy_tolerance)

    def quantiles(self) -> dict[str, float]:
        values = np.quantile(self.normalised, QUANTILES)
        return {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, values)}

    def reference_quantiles(self) -> dict[str, float]:
        values = np.quantile(self.reference_nn / self.scale if self.scale > 0 else self.reference_nn, QUANTILES)
        return {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, values)}

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": int(len(self.distances)),
            "training_samples": int(len(self.reference_nn)),
            "scale": self.scale,
            "min_normalised": self.min,
            "quantiles_normalised": self.quantiles(),
            "reference_quantiles_normalised": self.reference_quantiles(),
            "close_quantile": self.close_quantile,
            "threshold": self.threshold,
            "close_fraction": self.close_fraction,
            "copy_tolerance": self.copy_tolerance,
            "copies": [int(i) for i in self.copies],
        }


def dcr(gen_feats: np.ndarray, train_feats: np.ndarray, close_quantile: float = 0.05,
        copy_tolerance: float = 1e-3) -> DCRResult:
    """Distance to closest record of each row of `gen_feats` among the rows of `train_feats` (at least
    2), with the training set's own nearest-neighbour distances for comparison."""
    gen = np.asarray(gen_feats, np.float64)
    train = np.asarray(train_feats, np.float64)
    if gen.ndim != 2 or train.ndim != 2 or gen.shape[1] != train.shape[1]:
        raise ValueError(f"expected two N×D feature arrays of one D, got {gen.shape} and {train.shape}")
    if len(train) < 2:
        raise ValueError(f"DCR needs at least 2 training samples to compare with, got {len(train)}")
    if len(gen) == 0:
        raise ValueError("DCR of no generated samples")
    distances, index = nearest(gen, train)
    reference_nn, _ = nearest(train, train, exclude_self=True)
    scale = float(np.median(reference_nn))
    threshold = float(np.quantile(reference_nn, close_quantile))
    return DCRResult(distances, index, reference_nn, scale, threshold, close_quantile, copy_tolerance)
