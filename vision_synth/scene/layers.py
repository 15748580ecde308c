"""A `Layer` is one thing to paste into a scene: a local alpha and how it looks over what lies beneath.

Generators (sprites, COCO crops, procedural defects) all return Layers, and the placement engine
pastes them. The instance mask of a pasted layer is `alpha >= 0.5` after any clipping, and the
pixels are `under * (1 - alpha) + render(under) * alpha`, so pixels and mask come from one array.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

Render = Callable[[np.ndarray], np.ndarray]
MASK_THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class Layer:
    """`alpha`: h×w float32 in [0, 1]. `render(under)`: h×w×3 float32 (0..255) → same shape."""

    alpha: np.ndarray
    render: Render
    category_id: int
    source: str = "procedural"
    # "alpha" pastes by alpha; "poisson" pastes the masked region with OpenCV seamlessClone
    blend: str = "alpha"

    def __post_init__(self) -> None:
        if self.alpha.ndim != 2 or self.alpha.dtype != np.float32:
            raise ValueError(f"layer alpha must be h×w float32, got {self.alpha.shape} {self.alpha.dtype}")

    @cached_property
    def mask(self) -> np.ndarray:
        return self.alpha >= MASK_THRESHOLD

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.alpha.shape[0]), int(self.alpha.shape[1])


def constant(rgb: np.ndarray) -> Render:
    """A render that ignores what lies beneath (an opaque sprite's colours)."""
    rgb = np.asarray(rgb, np.float32)
    return lambda under: rgb
