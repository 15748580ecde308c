"""Simple Copy-Paste (Ghiasi et al. 2021) across samples: instances cut out by their masks from
source samples, scale-jittered, pasted over a target; what they cover is hidden.

Pasting goes through the scene's placement engine (`place_instances`), which keeps the label map of
the pasted instances among themselves. The target's own instances then lose exactly the pixels the
pasted ones took: a visible mask shrinks, one covered completely is dropped, and one left below
the minimum area or fraction is dropped too (same rules as placement).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from vision_synth import masks as mask_ops
from vision_synth.masks import mask_areas
from vision_synth.augment.spec import CopyPasteSpec
from vision_synth.scene.layers import Layer
from vision_synth.scene.placement import PlacementRules, Request, place_instances
from vision_synth.spec import integer, uniform
from vision_synth.types import Instances, Sample

STAGE = "copy-paste"
SOURCE = "copy-paste"


def copy_paste(target: Sample, sources: list[Sample], rng: np.random.Generator, spec: CopyPasteSpec) -> Sample:
    """`target` with instances of `sources` pasted over it (chosen by class filter and weights,
    without repeats). Returns `target` itself when nothing could be pasted."""
    candidates, weights = _candidates(sources, spec)
    count = min(integer(rng, spec.count), int(np.count_nonzero(weights)))
    if count == 0:
        return target
    picks = rng.choice(len(candidates), size=count, replace=False, p=weights / weights.sum())
    requests = [Request(_layer(*candidates[int(k)], rng, spec)) for k in picks]
    rules = PlacementRules(max_overlap=spec.max_overlap, min_visible_area=spec.min_visible_area,
                           min_visible_fraction=spec.min_visible_fraction, max_tries=spec.max_tries)
    with_amodal = target.instances.amodal_masks is not None
    image, pasted, _ = place_instances(target.image, requests, rng, rules, amodal=with_amodal)
    if len(pasted) == 0:
        return target
    below = _occlude(target.instances, pasted.masks.any(axis=0), spec)
    if "source" not in below.attributes:
        below = _with_attribute(below, "source", np.full(len(below), target.provenance.generator, dtype=object))
    instances = Instances.concatenate(_common_attributes(below, pasted))
    provenance = dataclasses.replace(target.provenance.with_stage(STAGE), synthetic=True)
    return target.replace(image=image, instances=instances, provenance=provenance)


def _candidates(sources: list[Sample], spec: CopyPasteSpec) -> tuple[list[tuple[Sample, int]], np.ndarray]:
    """Every pastable instance (exact mask, allowed class) and its weight."""
    candidates, weights = [], []
    allowed = None if spec.classes is None else set(spec.classes)
    for source in sources:
        inst = source.instances
        approximate = inst.attributes.get("approximate")
        for k, cat in enumerate(inst.category_ids.tolist()):
            if allowed is not None and cat not in allowed:
                continue
            if approximate is not None and approximate[k]:
                continue  # a box-only annotation has no shape to cut out
            candidates.append((source, k))
            weights.append(spec.class_weights.get(cat, 1.0))
    return candidates, np.asarray(weights, np.float64)


def _layer(source: Sample, row: int, rng: np.random.Generator, spec: CopyPasteSpec) -> Layer:
    """The instance's pixels inside its mask, scaled and maybe mirrored, as a Layer to paste."""
    mask = source.instances.masks[row]
    x, y, w, h = mask_ops.mask_box(mask)
    alpha = mask[y : y + h, x : x + w].astype(np.float32)
    rgb = source.image[y : y + h, x : x + w].astype(np.float32)
    factor = uniform(rng, spec.scale)
    if factor != 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        # resized premultiplied by the mask, so pixels around the instance do not bleed into its edge
        soft = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR).reshape(size[1], size[0])
        rgb = cv2.resize(rgb * alpha[..., None], size, interpolation=cv2.INTER_LINEAR).reshape(size[1], size[0], 3)
        rgb = rgb / np.maximum(soft, 1e-6)[..., None]
        alpha = ((soft >= 0.5) if (soft >= 0.5).any() else (soft >= soft.max())).astype(np.float32)
    if spec.flip and rng.random() < 0.5:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    if spec.blend == "feather":  # soften the edge; keep a margin so the blur is not clipped
        pad = int(np.ceil(3 * spec.feather))
        soft = cv2.GaussianBlur(np.pad(alpha, pad), (0, 0), spec.feather)
        alpha = soft if (soft >= 0.5).any() else np.pad(alpha, pad)
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return Layer.solid(np.ascontiguousarray(alpha, np.float32), np.ascontiguousarray(rgb),
                       int(source.instances.category_ids[row]), SOURCE,
                       blend="poisson" if spec.blend == "poisson" else "alpha")


def _occlude(inst: Instances, covered: np.ndarray, spec: CopyPasteSpec) -> Instances:
    """Target instances minus the pasted pixels; a touched one left under the minimum is dropped."""
    before = mask_areas(inst.masks)
    masks = inst.masks & ~covered
    after = mask_areas(masks)
    touched = after < before
    big_enough = (after >= spec.min_visible_area) & (after >= spec.min_visible_fraction * before)
    keep = (after > 0) & (~touched | big_enough)
    attributes = dict(inst.attributes)
    if inst.amodal_masks is not None:
        full = mask_areas(inst.amodal_masks)
        occlusion = 1.0 - after / np.maximum(full, 1)
    elif "occlusion" in attributes:  # visible share of the whole object shrinks by after / before
        occlusion = 1.0 - (after / np.maximum(before, 1)) * (1.0 - attributes["occlusion"])
    else:
        occlusion = 1.0 - after / np.maximum(before, 1)
    attributes["occlusion"] = occlusion.astype(np.float32)
    return Instances(masks, inst.category_ids, inst.amodal_masks, attributes)[keep]


def _with_attribute(inst: Instances, key: str, values: np.ndarray) -> Instances:
    return Instances(inst.masks, inst.category_ids, inst.amodal_masks, {**inst.attributes, key: values})


def _common_attributes(*parts: Instances) -> list[Instances]:
    """The parts with the union of their attributes; a part lacking one gets zeros (None for objects)."""
    dtypes = {}
    for part in parts:
        for key, values in part.attributes.items():
            dtypes.setdefault(key, values.dtype)
    out = []
    for part in parts:
        attributes = dict(part.attributes)
        for key, dtype in dtypes.items():
            if key not in attributes:
                attributes[key] = np.full(len(part), None, object) if dtype == object else np.zeros(len(part), dtype)
        out.append(Instances(part.masks, part.category_ids, part.amodal_masks, attributes))
    return out
