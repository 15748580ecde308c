"""Fixtures shared by every test folder: config files and a small COCO dataset under tmp_path.
Plain helper functions are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helpers import synthetic_samples, write_coco_dataset

# the caller's variables that change what the package does: Hugging Face hub and cache settings,
# transformers' offline switch, and the package's own (VISION_SYNTH_FID_WEIGHTS, ...)
CALLER_VARIABLES = ("HF_", "VISION_SYNTH_", "TRANSFORMERS_OFFLINE")


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch):
    """Every test runs as if none of CALLER_VARIABLES were set (subprocesses inherit the cleared
    environment); a test that needs one sets it with monkeypatch.setenv."""
    for name in list(os.environ):
        if name.startswith(CALLER_VARIABLES):
            monkeypatch.delenv(name)


@pytest.fixture
def write_config(tmp_path):
    """Write a dataset config (dict) as YAML under tmp_path and return its path."""

    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def coco_dataset(tmp_path):
    """A small real-looking COCO dataset on disk: (annotations.json, images dir, samples)."""
    samples = synthetic_samples()
    ann, images = write_coco_dataset(tmp_path / "dataset", samples)
    return ann, images, samples
