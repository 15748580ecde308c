"""Plain helpers of the diffusion tests: paths, prompts, specs and dataset configs over the tiny
models. Fixtures (the tiny model folders, no network, an empty hub cache, one CPU thread): conftest.py."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from vision_synth.diffusion.spec import DiffusionSpec
from vision_synth.diffusion.tiny import TinyModels

REPO = Path(__file__).resolve().parents[2]
TINY_CLIP = REPO / "tests" / "assets" / "tiny_clip"
CATEGORIES = ("scratch", "crack", "stain", "pit", "dent", "particles")
# the ADE20K class each category is drawn as in a segmentation control map (ADE20K has no defects)
ADE20K = {"scratch": "rock", "crack": "earth", "stain": "water", "pit": "sand", "dent": "base", "particles": "grass"}
PROMPTS = {name: {"prompt": f"a {name} on a metal surface", "negative_prompt": "blurry", "ade20k": ADE20K[name]}
           for name in CATEGORIES}
SCENE_PROMPT = {"prompt": "a photo of a brushed metal surface", "negative_prompt": "low quality"}



@lru_cache(maxsize=1)
def config_class():
    """DatasetConfig with `generator: diffusion` and a `diffusion:` section, until config.py has them."""
    from vision_synth.config import DatasetConfig

    if "diffusion" in DatasetConfig.model_fields:
        return DatasetConfig

    class DiffusionDatasetConfig(DatasetConfig):
        generator: Literal["procedural", "diffusion"] = "procedural"
        diffusion: DiffusionSpec | None = None

    return DiffusionDatasetConfig


def diffusion_spec(models: TinyModels, mode: str, **changes) -> DiffusionSpec:
    data = dict(mode=mode, model=str(models.folder(mode)), prompts=PROMPTS, steps=2, device="cpu", batch_size=3,
                strength=0.5 if mode == "refine" else None,
                # the tiny models draw noise, which the inpaint check rightly rejects as re-texturing:
                # tests of the mechanics keep every inpainted instance; test_generator's fake
                # pipelines test the verdicts
                check={"min_agreement": 0.0 if mode == "inpaint-insert" else 0.3})
    if mode == "layout-to-image":
        data["controlnet"] = str(models.controlnet)
    if mode != "inpaint-insert":
        data["scene_prompt"] = SCENE_PROMPT
    data.update(changes)
    return DiffusionSpec.model_validate(data)


def dataset_config(models: TinyModels, mode: str, size: int = 64, num_images: int = 4, seed: int = 5,
                   scene: str = "surface_defects", amodal: bool = False, **changes):
    from vision_synth.config import find_scene, load_scene

    scene_spec = load_scene(find_scene(scene, REPO / "configs"))
    return config_class()(
        name=f"tiny-{mode}", seed=seed, num_images=num_images, generator="diffusion", scene=scene_spec,
        image={"width": size, "height": size, "format": "png"}, output={"amodal": amodal, "preview_images": 4},
        diffusion=diffusion_spec(models, mode, **changes))


def publish_like_hub(folder: Path, dest: Path, fp32: str = "bin", variants: tuple[str, ...] = ("fp16",)) -> Path:
    """`folder` (a save_pretrained model or pipeline) rewritten under `dest` as the hub repos lay
    out their files: the full-precision weights as pickles (`fp32="bin"`: pytorch_model.bin /
    diffusion_pytorch_model.bin, as stable-diffusion-v1-5/stable-diffusion-inpainting), as plain
    safetensors beside the bin (`fp32="both"`: lllyasviel/sd-controlnet-*), and each variant as
    NAME.VARIANT.safetensors (in half precision)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, dest)
    for weights in sorted(dest.rglob("*.safetensors")):
        tensors = load_file(weights)
        stem = weights.name[: -len(".safetensors")]
        pickle_name = "pytorch_model.bin" if stem == "model" else f"{stem}.bin"
        torch.save(tensors, weights.with_name(pickle_name))
        for variant in variants:
            save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()},
                      weights.with_name(f"{stem}.{variant}.safetensors"))
        if fp32 == "bin":
            weights.unlink()
    return dest


def add_safety_checker(pipeline: Path) -> None:
    """Give a saved pipeline folder a (tiny) safety_checker/ and feature_extractor/, listed in its
    model_index.json, as the SD 1.5 repos have them."""
    import json

    from vision_synth.diffusion.tiny import tiny_feature_extractor, tiny_safety_checker

    tiny_safety_checker().save_pretrained(pipeline / "safety_checker", safe_serialization=True)
    tiny_feature_extractor().save_pretrained(pipeline / "feature_extractor")
    index = json.loads((pipeline / "model_index.json").read_text())
    index.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
                 feature_extractor=["transformers", "CLIPImageProcessor"], requires_safety_checker=True)
    (pipeline / "model_index.json").write_text(json.dumps(index, indent=2))


# ------------------------------------------------------------------ fake pipelines (pixel space)
class FakeVae:
    """Decodes pixel-space 'latents' as they are; `nan_in` dtypes decode to NaN (an fp16 overflow)."""

    def __init__(self, dtype, nan_in=()):
        import types

        self.dtype, self.nan_in = dtype, nan_in
        self.config = types.SimpleNamespace(scaling_factor=1.0)
        self.decodes: list = []  # the dtype of each decode call

    def to(self, dtype):
        self.dtype = dtype
        return self

    def decode(self, latents, return_dict=False):
        import torch

        self.decodes.append(self.dtype)
        out = latents.to(self.dtype).clone()
        if self.dtype in self.nan_in:
            out[:] = torch.nan
        return (out,)


class FakeInpaintPipeline:
    """The pieces of a diffusers inpainting pipeline that vision_synth calls, drawing in pixel
    space with `draw(image, mask, generator) -> H×W×3 float in [0, 1]` (image, mask: numpy)."""

    def __init__(self, draw, size: int = 64, vae_dtype=None, nan_in=(), flag=None):
        import types

        import torch
        from diffusers.image_processor import VaeImageProcessor

        self.draw, self.flag = draw, flag
        self.vae = FakeVae(vae_dtype or torch.float32, nan_in)
        self.vae_scale_factor = 8
        self.unet = types.SimpleNamespace(config=types.SimpleNamespace(sample_size=size // 8, in_channels=9))
        self.text_encoder = types.SimpleNamespace(dtype=torch.float32)
        self.image_processor = VaeImageProcessor(vae_scale_factor=8)
        self.safety_checker = None if flag is None else object()
        self._execution_device = torch.device("cpu")
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        import types

        import torch

        self.calls.append(kwargs)
        images = [self.draw(image, mask[..., 0] > 0.5, g)
                  for image, mask, g in zip(kwargs["image"], kwargs["mask_image"], kwargs["generator"])]
        latents = torch.from_numpy(np.stack(images).astype(np.float32)).permute(0, 3, 1, 2) * 2 - 1
        return types.SimpleNamespace(images=latents)

    def run_safety_checker(self, image, device, dtype):
        return image, [self.flag(i) for i in range(len(image))]


def retexture_everywhere(image, mask, generator):
    """A model that only re-draws the surface's texture, inside the mask and around it alike."""
    import torch

    noise = torch.rand(image.shape, generator=generator).numpy()
    return np.clip(image + (noise - 0.5) * 0.5, 0, 1)


def insert_distinct_object(image, mask, generator):
    """A model that paints a distinct object into the mask and leaves the rest nearly as it was."""
    import torch

    noise = torch.rand(image.shape, generator=generator).numpy()
    out = np.clip(image + (noise - 0.5) * 0.02, 0, 1)  # VAE round-trip noise
    out[mask] = (0.95, 0.1, 0.1)
    return out


def with_pipeline(generator, pipe):
    """`generator` (a DiffusionGenerator or Inpainter) running `pipe` instead of its loaded one."""
    import dataclasses

    generator.loaded = dataclasses.replace(generator.loaded, pipe=pipe)
    if hasattr(generator, "resolution"):
        generator.resolution = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    return generator
