"""The inpaint source: the shapes of real instance crops of the class are placed as with copy-paste,
then a pretrained inpainting pipeline (loaded by vision_synth.diffusion.loading: local files,
safetensors, offline-first) paints the class's prompt into them. As in the diffusion generator's
inpaint-insert, generated pixels are kept only inside the planned masks and each instance is checked
(`inserted_agreement`); one that fails is dropped and its pixels restored, so labels stay exact."""

from __future__ import annotations

import dataclasses

import numpy as np

from vision_synth.diffusion import check as checks
from vision_synth.diffusion.generator import Job, call_pipeline
from vision_synth.errors import ConfigError, VisionSynthError
from vision_synth.rare.paste import Pasted
from vision_synth.scene.layers import Layer
from vision_synth.scene.objects import Cutout, transform_cutout
from vision_synth.types import Instances

NOISE_JOB = 1


def shape_layers(cutouts: list[Cutout], paste_spec, category_id: int):
    """Layers that only reserve a crop's shape (pixels unchanged): the masks to inpaint."""
    def make(rng, hw):
        cutout = transform_cutout(cutouts[int(rng.integers(len(cutouts)))], rng, paste_spec, hw)
        alpha = (cutout.alpha >= 0.5).astype(np.float32)
        return Layer(alpha, np.float32(1.0), np.float32(0.0), category_id, "inpaint")
    return make


class Inpainter:
    """Paints the placed shapes of one class with a loaded inpainting pipeline."""

    def __init__(self, spec, class_name: str, seed: int, where: str) -> None:
        from vision_synth.diffusion.loading import load_pipeline

        if spec.mode != "inpaint-insert":
            raise ConfigError(f"{where}.mode: the inpaint source needs mode inpaint-insert, not {spec.mode}")
        if class_name not in spec.prompts:
            raise ConfigError(f"{where}.prompts: no prompt for class {class_name!r}")
        self.spec, self.seed, self.prompt = spec, seed, spec.prompts[class_name]
        try:
            self.loaded = load_pipeline(spec)
        except VisionSynthError as exc:  # missing or broken weights: say which policy key named them
            raise type(exc)(f"{where}: {exc}") from None

    @property
    def model(self) -> str:
        return self.loaded.model

    def __call__(self, background: np.ndarray, pasted: Pasted, index: int) -> Pasted:
        inst = pasted.instances
        new = inst.attributes["source"] == "inpaint"
        if not new.any():
            return pasted
        h, w = background.shape[:2]
        if h % 8 or w % 8:
            raise ConfigError(f"inpaint: image size {w}×{h} must be a multiple of 8 for the pipeline")
        masks = inst.masks[new]
        grow = self.spec.mask_dilation if self.spec.mask_dilation is not None else self.loaded.pipe.vae_scale_factor
        region = checks.dilate(masks.any(axis=0), grow) if grow else masks.any(axis=0)
        job = Job(index, NOISE_JOB, self.prompt.prompt, self.prompt.negative_prompt, image=background, mask=region)
        result = call_pipeline(self.loaded.pipe, self.spec, [job], self.seed, h, w, self.spec.effective_strength)[0]
        image = background.copy()
        for mask in masks:
            image[mask] = result.image[mask]
        agreement, _ = checks.inserted_agreement(image, background, masks, self.spec.check.min_difference,
                                                 self.spec.check.ring)
        keep = checks.judge(agreement, self.spec.check.min_agreement, masks).keep & (not result.flagged)
        for k in np.flatnonzero(~keep):
            image[masks[k]] = background[masks[k]]
        rows = np.concatenate([np.flatnonzero(~new), np.flatnonzero(new)[keep]])
        kept: Instances = inst[np.sort(rows)]
        return dataclasses.replace(pasted, image=image, instances=kept, added=int(keep.sum()))
