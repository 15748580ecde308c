"""Plain helpers of the diffusion tests: paths, prompts, specs and dataset configs over the tiny
models. Fixtures (the tiny model folders, no network, an empty hub cache, one CPU thread): conftest.py."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from vision_synth.diffusion.spec import DiffusionSpec
from vision_synth.diffusion.tiny import TinyModels

REPO = Path(__file__).resolve().parents[2]
TINY_CLIP = REPO / "tests" / "assets" / "tiny_clip"
CATEGORIES = ("scratch", "crack", "stain", "pit", "dent", "particles")
PROMPTS = {name: {"prompt": f"a {name} on a metal surface", "negative_prompt": "blurry"} for name in CATEGORIES}
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
                check={"min_agreement": 0.3})
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
