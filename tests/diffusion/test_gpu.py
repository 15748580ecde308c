"""The CUDA path: half precision, batched pipeline calls, compile. Skipped without CUDA."""

import numpy as np
import pytest
import torch

from diffusion_helpers import dataset_config
from vision_synth.diffusion import DiffusionGenerator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
MODES = ["inpaint-insert", "layout-to-image", "refine"]


@pytest.mark.parametrize("mode", MODES)
def test_cuda_half_precision_batched(tiny_models, mode):
    # min_agreement 0: every planned instance is kept, so the label checks below see all of them
    config = dataset_config(tiny_models, mode, device="auto", batch_size=3, check={"min_agreement": 0.0})
    generator = DiffusionGenerator(config)
    assert generator.loaded.device.type == "cuda" and generator.loaded.dtype == torch.float16
    assert generator.jobs_per_call == 3
    assert generator.loaded.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    batched = generator.generate([0, 1, 2])
    again = DiffusionGenerator(config).generate([0, 1, 2])
    single = DiffusionGenerator(dataset_config(tiny_models, mode, device="auto", batch_size=1,
                                               check={"min_agreement": 0.0})).generate([0, 1, 2])
    assert len(batched) == len(again) == len(single) == 3
    labelled = 0
    for a, b, c in zip(batched, again, single):
        assert a.sample.image.shape == (64, 64, 3)
        assert np.array_equal(a.sample.image, b.sample.image)  # same batches, same pixels
        # another batch makeup: equal up to the rounding of kernels chosen by batch size
        diff = np.abs(a.sample.image.astype(int) - c.sample.image.astype(int))
        assert diff.mean() < 1.0
        assert len(a.kept) == len(a.layout.instances)  # nothing flagged, NaN or rejected in half precision
        for j, k in enumerate(a.kept):
            assert not (a.sample.instances.masks[j] & ~a.layout.instances.masks[k]).any()
        labelled += len(a.kept)
    assert labelled > 0  # the label checks above ran on some instances


@pytest.mark.slow
def test_cuda_compiled_unet(tiny_models):
    config = dataset_config(tiny_models, "refine", device="auto", compile=True)
    plain = DiffusionGenerator(dataset_config(tiny_models, "refine", device="auto")).generate([0])
    compiled = DiffusionGenerator(config).generate([0])
    diff = np.abs(plain[0].sample.image.astype(int) - compiled[0].sample.image.astype(int))
    assert diff.mean() < 1.0
