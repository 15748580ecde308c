"""The layout a diffusion mode starts from, taken from the scene's compositor, and control maps.

The compositor already decides, from (seed, index) alone, the background and every instance's
visible mask and category; diffusion reuses that decision instead of sampling a second layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision_synth.seeding import rng_for
from vision_synth.types import Instances

# distinct colours (matplotlib's tab20) for categories without a configured control colour
PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229)], np.uint8)


@dataclass(frozen=True, eq=False)
class Layout:
    """One planned scene: `instances` are the planned visible masks (later ones on top)."""

    index: int
    seed: int
    background: np.ndarray  # H×W×3 uint8, before anything was pasted
    composite: np.ndarray  # H×W×3 uint8, the compositor's image
    instances: Instances
    background_name: str | None


def scene_layout(compositor, index: int) -> Layout:
    """The compositor's scene for `index`, with the background it was pasted on.

    The background is drawn again from a fresh rng_for(seed, index): the compositor draws it first
    from that generator, so the draw is the same (tests/diffusion/test_layout.py holds it to that).
    """
    sample = compositor.sample(index)
    height, width = sample.image.shape[:2]
    background, _, _ = compositor.backgrounds.draw(rng_for(sample.seed, index), height, width)
    return Layout(index, sample.seed, background, sample.image, sample.instances, sample.provenance.background)


def category_colors(category_ids, configured: dict[int, tuple[int, int, int]]) -> dict[int, np.ndarray]:
    return {int(c): np.asarray(configured.get(int(c), PALETTE[(int(c) - 1) % len(PALETTE)]), np.uint8)
            for c in category_ids}


def segmentation_map(instances: Instances, colors: dict[int, np.ndarray]) -> np.ndarray:
    """H×W×3 uint8: each visible mask filled with its category's colour on black."""
    height, width = instances.image_size
    out = np.zeros((height, width, 3), np.uint8)
    for mask, cat in zip(instances.masks, instances.category_ids):
        out[mask] = colors[int(cat)]
    return out


def edge_map(instances: Instances, thickness: int = 2) -> np.ndarray:
    """H×W×3 uint8: white outlines of every visible mask on black (what an edge ControlNet reads)."""
    height, width = instances.image_size
    edges = np.zeros((height, width), np.uint8)
    kernel = np.ones((thickness, thickness), np.uint8) if thickness > 1 else np.ones((2, 2), np.uint8)
    for mask in instances.masks:
        m = mask.astype(np.uint8)
        edges |= cv2.morphologyEx(m, cv2.MORPH_GRADIENT, kernel)
    return np.repeat(edges[..., None] * 255, 3, axis=2)
