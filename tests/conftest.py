"""Fixtures shared by every test folder: config files and a small COCO dataset under tmp_path.
Plain helper functions are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import synthetic_samples, write_coco_dataset


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
