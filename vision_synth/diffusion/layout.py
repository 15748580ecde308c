"""The control maps a ControlNet is conditioned on, drawn from the compositor's layout.

The layout itself (background, visible masks, categories) is `Compositor.layout(index)`: the
compositor decides it from (seed, index) alone, and diffusion reuses that decision instead of
sampling a second one. The maps are drawn as the ControlNets' training data was:
- segmentation: each category filled with its ADE20K class colour, the rest of the image with the
  background class (the palette of the annotator lllyasviel/sd-controlnet-seg learned from);
- canny: cv2.Canny of the composited image, with the annotator's thresholds (100, 200), so the
  map holds the objects' inner edges and texture as well as their outlines.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision_synth.diffusion.ade20k import ade20k_color
from vision_synth.scene.compositor import Layout
from vision_synth.types import Instances

__all__ = ["Layout", "canny_map", "category_colors", "segmentation_map"]

# thresholds of the ControlNet canny annotator (lllyasviel/ControlNet annotator/canny, gradio demo defaults)
CANNY_LOW, CANNY_HIGH = 100, 200


def category_colors(ade20k_names: dict[int, str]) -> dict[int, np.ndarray]:
    """Category id → the palette colour of the ADE20K class it is drawn as."""
    return {int(c): ade20k_color(name) for c, name in ade20k_names.items()}


def segmentation_map(instances: Instances, colors: dict[int, np.ndarray], background: np.ndarray) -> np.ndarray:
    """H×W×3 uint8: the background class's colour, each visible mask in its category's colour."""
    height, width = instances.image_size
    out = np.empty((height, width, 3), np.uint8)
    out[:] = background
    for mask, cat in zip(instances.masks, instances.category_ids):
        out[mask] = colors[int(cat)]
    return out


def canny_map(image: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> np.ndarray:
    """H×W×3 uint8: white Canny edges of an RGB image on black (what a canny ControlNet reads)."""
    edges = cv2.Canny(image, low, high)
    return np.repeat(edges[..., None], 3, axis=2)
