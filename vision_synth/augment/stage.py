"""The augmentation stage: a Sample through an albumentations pipeline, with labels re-derived from
the transformed masks; and the copies of one sample with their output indices.

Masks go through the pipeline in the same call as the image (packed into label planes, see
planes.py); boxes and areas are derived from the masks afterwards, never transformed themselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from vision_synth.augment.copy_paste import copy_paste
from vision_synth.masks import mask_areas
from vision_synth.augment.planes import pack_masks, unpack_masks
from vision_synth.augment.spec import AugmentSpec
from vision_synth.seeding import rng_for
from vision_synth.types import Instances, Sample

if TYPE_CHECKING:
    from vision_synth.augment.albu import Pipeline

STAGE = "augment"
SourcePicker = Callable[[np.random.Generator], "list[Sample]"]


@dataclass(frozen=True)
class AugmentRules:
    """An instance the pipeline leaves with fewer than `min_area` pixels, or with less than
    `min_visible_fraction` of its pixel count before (scaled by the change in image size), is
    dropped together with its mask."""

    min_area: int = 16
    min_visible_fraction: float = 0.0

    @classmethod
    def from_spec(cls, spec: AugmentSpec) -> AugmentRules:
        return cls(spec.min_area, spec.min_visible_fraction)


def augment_sample(sample: Sample, pipeline: Pipeline, rng: np.random.Generator,
                   rules: AugmentRules = AugmentRules()) -> Sample:
    """`sample` after one draw of `pipeline` (seeded from `rng`): image and masks moved together,
    instances under the rules dropped. Colour-only pipelines leave masks and instances as they were.
    The result may have no instances left."""
    inst = sample.instances
    provenance = dataclasses.replace(sample.provenance.with_stage(STAGE), synthetic=True)
    if not pipeline.geometric:
        image, _ = pipeline.apply(sample.image, np.zeros((0, *sample.image.shape[:2]), np.uint8), rng)
        return sample.replace(image=image, provenance=provenance)
    if len(inst) == 0:
        image, _ = pipeline.apply(sample.image, np.zeros((0, *sample.image.shape[:2]), np.uint8), rng)
        return sample.replace(image=image, instances=_resized_empty(inst, image.shape[:2]), provenance=provenance)

    n = len(inst)
    amodal = inst.amodal_masks
    stacked = inst.masks if amodal is None else np.concatenate([inst.masks, amodal])
    packed = pack_masks(stacked, pipeline.shared_planes)
    image, planes = pipeline.apply(sample.image, packed.planes, rng)
    moved, counts = unpack_masks(planes, packed)
    visible, areas = moved[:n], counts[:n]
    new_amodal = None if amodal is None else moved[n:]

    keep = areas >= max(rules.min_area, 1)
    if rules.min_visible_fraction > 0:
        growth = (image.shape[0] * image.shape[1]) / (sample.image.shape[0] * sample.image.shape[1])
        keep &= areas >= rules.min_visible_fraction * mask_areas(inst.masks) * growth
    attributes = dict(inst.attributes)
    if new_amodal is not None and "occlusion" in attributes:
        full = counts[n:]
        attributes["occlusion"] = np.where(full > 0, 1.0 - areas / np.maximum(full, 1), 0.0).astype(np.float32)
    moved_instances = Instances(visible, inst.category_ids, new_amodal, attributes)
    if not keep.all():
        moved_instances = moved_instances[keep]
    return sample.replace(image=image, instances=moved_instances, provenance=provenance)



def _resized_empty(inst: Instances, size: tuple[int, int]) -> Instances:
    """No instances, at a new image size, with the same (empty) attributes."""
    amodal = None if inst.amodal_masks is None else np.zeros((0, *size), bool)
    return Instances(np.zeros((0, *size), bool), inst.category_ids[:0], amodal,
                     {k: v[:0] for k, v in inst.attributes.items()})


def output_index(index: int, copy: int | None, spec: AugmentSpec) -> int:
    """Output index of copy `copy` of sample `index` (`None`: the original, when kept)."""
    if copy is None:
        if not spec.keep_originals:
            raise ValueError("originals are not kept")
        return index * spec.slots
    if not 0 <= copy < spec.copies:
        raise ValueError(f"copy {copy} out of range 0..{spec.copies - 1}")
    return index * spec.slots + int(spec.keep_originals) + copy


def source_of(out_index: int, spec: AugmentSpec) -> tuple[int, int | None]:
    """(sample index, copy) of an output index; copy is None for a kept original."""
    index, slot = divmod(out_index, spec.slots)
    copy = slot - int(spec.keep_originals)
    return index, (None if copy < 0 else copy)


def augmented_copies(sample: Sample, pipeline: Pipeline | None, spec: AugmentSpec,
                     sources: SourcePicker | None = None) -> list[Sample]:
    """The output samples of one input sample, in output-index order: the original (if kept) and
    `spec.copies` copies. Copy c draws everything from rng_for(sample.seed, sample.index, c): first
    copy-paste (with `sources(rng)` giving the samples to paste from), then the pipeline. With
    `drop_empty`, samples without instances are left out (their output indices stay unused)."""
    if spec.copy_paste is not None and sources is None:
        raise ValueError("copy_paste is configured but no sources were given")
    rules = AugmentRules.from_spec(spec)
    out = []
    if spec.keep_originals:
        out.append(sample.replace(index=output_index(sample.index, None, spec)))
    for c in range(spec.copies):
        rng = rng_for(sample.seed, sample.index, c)
        variant = sample
        if spec.copy_paste is not None and rng.random() < spec.copy_paste.probability:
            variant = copy_paste(variant, sources(rng), rng, spec.copy_paste)
        if pipeline is not None:
            variant = augment_sample(variant, pipeline, rng, rules)
        provenance = dataclasses.replace(variant.provenance, synthetic=True)
        out.append(variant.replace(index=output_index(sample.index, c, spec), provenance=provenance))
    if spec.drop_empty:
        out = [s for s in out if len(s.instances)]
    return out
