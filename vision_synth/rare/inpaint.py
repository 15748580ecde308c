"""The inpaint source: the shapes of real instance crops of the class are placed as with copy-paste,
then a pretrained inpainting pipeline (loaded by vision_synth.diffusion.loading: local files,
safetensors, offline-first) paints the class's prompt into them. As in the diffusion generator's
inpaint-insert, generated pixels are kept only inside the planned masks and each instance is checked
(`inserted_agreement`, against the noise floor of the model's raw crop); one that fails is dropped
and its pixels restored, so labels stay exact. Each shape is inpainted in a crop around it at the
model's resolution and pasted back feathered inside its mask, so images of any size work, and all
classes that name the same model share one loaded pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np

from vision_synth.diffusion import check as checks
from vision_synth.diffusion import crops
from vision_synth.diffusion.generator import Job, run_jobs
from vision_synth.errors import ConfigError, VisionSynthError
from vision_synth.rare.paste import Pasted
from vision_synth.scene.layers import Layer
from vision_synth.scene.objects import Cutout, transform_cutout
from vision_synth.types import Instances

NOISE_JOB = 1  # job number of new instance k: NOISE_JOB + k
# loaded pipelines by what loading depends on: one per model in the process, shared by classes
_PIPELINES: dict[str, object] = {}
LOADING_KEYS = ("mode", "model", "variant", "lora", "dtype", "device", "scheduler", "attention", "channels_last",
                "vae_slicing", "vae_tiling", "compile", "safety_checker", "offline")


def shared_pipeline(spec):
    """The LoadedPipeline for `spec`, loaded once per process for every spec that loads alike."""
    import json

    from vision_synth.diffusion.loading import load_pipeline

    key = json.dumps(spec.model_dump(mode="json", include=set(LOADING_KEYS)), sort_keys=True)
    if key not in _PIPELINES:
        _PIPELINES[key] = load_pipeline(spec)
    return _PIPELINES[key]


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
        if spec.mode != "inpaint-insert":
            raise ConfigError(f"{where}.mode: the inpaint source needs mode inpaint-insert, not {spec.mode}")
        if class_name not in spec.prompts:
            raise ConfigError(f"{where}.prompts: no prompt for class {class_name!r}")
        self.spec, self.seed, self.prompt = spec, seed, spec.prompts[class_name]
        try:
            self.loaded = shared_pipeline(spec)
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
        spec, pipe = self.spec, self.loaded.pipe
        masks = inst.masks[new]
        side = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        grow = spec.mask_dilation if spec.mask_dilation is not None else int(pipe.vae_scale_factor)
        windows = [crops.crop_window(mask, spec.crop_context) for mask in masks]
        jobs = [Job(index, NOISE_JOB + k, self.prompt.prompt, self.prompt.negative_prompt,
                    image=crops.resize_image(w.of(background), side),
                    mask=checks.dilate(crops.resize_mask(w.of(mask), side), grow))
                for k, (mask, w) in enumerate(zip(masks, windows))]
        results = run_jobs(pipe, spec, jobs, self.seed, side, side, spec.effective_strength, len(jobs)
                           if self.loaded.device.type == "cuda" else 1)
        image = background.copy()
        raws = np.repeat(background[None], len(masks), axis=0)
        painted, within = np.zeros_like(masks), np.zeros_like(masks)
        made = np.array([r.image is not None for r in results], bool)
        for k, (mask, window, job, result) in enumerate(zip(masks, windows, jobs, results)):
            window.of(painted[k])[:] = crops.resize_mask(job.mask, window.side)
            window.of(within[k])[:] = True
            if result.image is not None:
                window.of(raws[k])[:] = crops.resize_image(result.image, window.side)
                image = crops.paste_feathered(image, raws[k], mask, spec.feather)
        agreement, _ = checks.inserted_agreement(image, background, masks, spec.check.min_difference,
                                                 spec.check.ring, raws, checks.floor_bands(painted, within,
                                                                                           spec.check.ring))
        keep = checks.judge(agreement, spec.check.min_agreement, masks).keep & made
        for k in np.flatnonzero(~keep):
            image[masks[k]] = background[masks[k]]
        rows = np.concatenate([np.flatnonzero(~new), np.flatnonzero(new)[keep]])
        kept: Instances = inst[np.sort(rows)]
        return dataclasses.replace(pasted, image=image, instances=kept, added=int(keep.sum()))
