"""A `Layer` is one thing to paste into a scene: a local alpha and how it looks over what lies beneath.

Generators (sprites, COCO crops, procedural defects) all return Layers, and the placement engine
pastes them. A layer's colour over `under` is the affine `render(under) = under · gain + offset`
(an opaque sprite: gain 0, offset its colours; a defect: maps that darken or tint). The instance
mask of a pasted layer is `alpha >= 0.5` after any clipping, and the pixels are
`under · (1 − alpha) + render(under) · alpha`, so pixels and mask come from one array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

MASK_THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class Layer:
    """`alpha`: h×w float32 in [0, 1]. `gain`, `offset`: float32 arrays that broadcast to h×w×3
    (h×w×1 for a grey map, h×w×3 per channel, or a scalar / RGB triple), colours in 0..255."""

    alpha: np.ndarray
    gain: np.ndarray | float
    offset: np.ndarray | float
    category_id: int
    source: str = "procedural"
    # "alpha" pastes by alpha; "poisson" pastes the masked region with OpenCV seamlessClone
    blend: str = "alpha"

    # set once here (plain attributes: placement reads them for every try of every instance)
    mask: np.ndarray = field(init=False, repr=False)  # alpha >= MASK_THRESHOLD
    shape: tuple[int, int] = field(init=False, repr=False)  # (h, w)

    def __post_init__(self) -> None:
        if self.alpha.ndim != 2 or self.alpha.dtype != np.float32:
            raise ValueError(f"layer alpha must be h×w float32, got {self.alpha.shape} {self.alpha.dtype}")
        object.__setattr__(self, "mask", self.alpha >= MASK_THRESHOLD)
        object.__setattr__(self, "shape", (int(self.alpha.shape[0]), int(self.alpha.shape[1])))

    @classmethod
    def solid(cls, alpha: np.ndarray, rgb: np.ndarray, category_id: int, source: str = "procedural",
              blend: str = "alpha") -> Layer:
        """A layer that ignores what lies beneath: `rgb` (h×w×3 or one colour, 0..255) over it."""
        return cls(alpha, np.float32(0.0), np.asarray(rgb, np.float32), category_id, source, blend)

    def render(self, under: np.ndarray) -> np.ndarray:
        """The layer's colours over `under` (h×w×3 float32), before alpha."""
        return np.broadcast_to(under * self.gain + self.offset, under.shape)
