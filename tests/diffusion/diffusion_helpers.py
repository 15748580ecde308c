"""Shared by the diffusion tests: tiny model folders (built once per session) and dataset configs.

Not a conftest.py: tests/conftest.py is imported as `conftest` by the other test folders.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import pytest

from vision_synth.diffusion.spec import DiffusionSpec
from vision_synth.diffusion.tiny import TinyModels, save_tiny_models

REPO = Path(__file__).resolve().parents[2]
TINY_CLIP = REPO / "tests" / "assets" / "tiny_clip"
CATEGORIES = ("scratch", "crack", "stain", "pit", "dent", "particles")
PROMPTS = {name: {"prompt": f"a {name} on a metal surface", "negative_prompt": "blurry"} for name in CATEGORIES}
SCENE_PROMPT = {"prompt": "a photo of a brushed metal surface", "negative_prompt": "low quality"}

_models: dict[str, TinyModels] = {}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    """The three tiny model folders, saved once per session (safetensors)."""
    if "models" not in _models:
        _models["models"] = save_tiny_models(tmp_path_factory.mktemp("tiny_models"), TINY_CLIP)
    return _models["models"]


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


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache, so the machine's own cache plays no part."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """Run the models on one CPU thread: with two, OpenMP's spinning threads slow these tiny models
    down twentyfold as soon as another process shares the cores (0.25 s against 6 s per call)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
