"""New images for rare classes: layers of one class (real crops, procedural defects or learned
crops) pasted onto a training image, inside the part region and away from its instances. The
image's own instances are kept as they are (nothing covers them), so their labels stay exact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vision_synth.scene.defects import make_defect
from vision_synth.scene.layers import Layer
from vision_synth.scene.objects import Cutout, object_layer
from vision_synth.scene.placement import PlacementRules, Request, place_instances
from vision_synth.types import Instances

# pasted instances never overlap each other nor the image's own; tiny defects are still kept
RULES = PlacementRules(max_overlap=0.0, min_visible_area=4, min_visible_fraction=1.0, max_tries=40)

LayerMaker = Callable[[np.random.Generator, tuple[int, int]], Layer]


@dataclass(frozen=True)
class Pasted:
    image: np.ndarray
    instances: Instances  # the target's own (source "real") then the pasted ones
    added: int


def crop_layers(cutouts: list[Cutout], paste_spec, blend, category_id: int, source: str) -> LayerMaker:
    """Layers from instance crops (copy-paste, learned): scale, rotation, flip, colour jitter, blend."""
    if not cutouts:
        raise ValueError("no crops to paste")
    return lambda rng, hw: object_layer(cutouts, paste_spec, blend, rng, hw, category_id, source=source)


def defect_layers(spec, category_id: int) -> LayerMaker:
    """Layers of a compositor defect generator (procedural)."""
    return lambda rng, hw: make_defect(spec, rng, hw, category_id)


def free_region(instances: Instances, margin: int, part: np.ndarray | None) -> np.ndarray:
    """Where new instances may go: inside the part mask (if any), `margin` pixels from instances."""
    taken = instances.masks.any(axis=0)
    if margin > 0 and taken.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        taken = cv2.dilate(taken.astype(np.uint8), kernel) > 0
    free = ~taken
    return free & part if part is not None else free


def paste_onto(background: np.ndarray, own: Instances, make: LayerMaker, count: int, rng: np.random.Generator,
               margin: int = 2, part: np.ndarray | None = None) -> Pasted:
    """`count` layers from `make` pasted over `background`; `own` are its existing instances."""
    hw = background.shape[:2]
    if len(own) == 0:
        own = Instances.empty(*hw)
    region = free_region(own, margin, part if part is None else _fit(part, hw))
    requests = [Request(make(rng, hw), region=region) for _ in range(count)]
    image, pasted, _ = place_instances(background, requests, rng, RULES)
    own = Instances(own.masks, own.category_ids, attributes={
        "source": np.full(len(own), "real", dtype=object),
        "approximate": np.asarray(own.attributes.get("approximate", np.zeros(len(own), bool)), bool)})
    pasted = Instances(pasted.masks, pasted.category_ids, attributes={
        "source": pasted.attributes["source"], "approximate": np.zeros(len(pasted), bool)})
    return Pasted(image, Instances.concatenate([own, pasted]), len(pasted))


def _fit(part: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if part.shape == hw:
        return part
    return cv2.resize(part.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) > 0
