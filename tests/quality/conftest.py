"""Fixtures of the quality tests: the FID network at its smallest input, a random-init weights file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quality_helpers import TEST_INPUT_SIZE


@pytest.fixture
def small_inception(monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", TEST_INPUT_SIZE)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A random-init state dict of the FID Inception-v3, saved like the real weights file."""
    pytest.importorskip("torch_fidelity", reason="fidelity tests need torch-fidelity (the fid extra)")
    from vision_synth.quality.features import random_inception_state_dict

    path = tmp_path_factory.mktemp("weights") / "inception-random-test.pth"
    torch.save(random_inception_state_dict(seed=7), path)
    return path
