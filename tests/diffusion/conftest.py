"""Fixtures of the diffusion tests: tiny model folders (built once per session), no network, an empty
Hugging Face cache, and every module run on one CPU thread."""

from __future__ import annotations

import pytest

from diffusion_helpers import TINY_CLIP
from vision_synth.diffusion.tiny import TinyModels, save_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    """The three tiny model folders, saved once per session (safetensors)."""
    return save_tiny_models(tmp_path_factory.mktemp("tiny_models"), TINY_CLIP)


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

