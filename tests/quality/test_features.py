"""The Inception-v3 features: loaded from a local weights file named by the config or the environment
(as a user would), a clear error without one, and FID/KID over real image features that are ~0 for a
set against itself and rise with added noise."""

import numpy as np
import pytest
import torch

from quality_helpers import add_noise, real
from vision_synth.errors import VisionSynthError
from vision_synth.quality.features import _network, load_extractor
from vision_synth.quality.fidelity import frechet_distance, kernel_inception_distance
from vision_synth.quality.spec import WEIGHTS_ENV

pytest.importorskip("torch_fidelity", reason="fidelity tests need torch-fidelity (the fid extra)")


@pytest.mark.slow  # Inception features of three sets (~10 s)
def test_fid_and_kid_are_zero_for_a_set_against_itself_and_rise_with_noise(inception_weights, small_inception,
                                                                          monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(inception_weights))  # the path a user would take
    extractor = load_extractor("inception", device="cpu", batch_size=16)
    assert extractor.weights == inception_weights and not extractor.is_proxy
    assert len(extractor.weights_sha256) == 64
    images = [s.image for s in real(16, seed=5)]
    base = extractor(images)
    assert base.shape == (16, 2048) and np.isfinite(base).all()
    assert np.allclose(extractor(images), base)  # eval mode, deterministic

    assert frechet_distance(base, base) == pytest.approx(0.0, abs=1e-9)
    noisy = [extractor(add_noise(images, sigma, seed=1)) for sigma in (8, 16, 32, 64)]
    fids = [frechet_distance(base, f) for f in noisy]
    kids = [kernel_inception_distance(base, f, 16, 10, np.random.default_rng(0))[0] for f in [base, *noisy]]
    assert 0 < fids[0] < fids[1] < fids[2] < fids[3]
    # KID is unbiased, so a set against itself comes out near 0, possibly just below
    assert abs(kids[0]) < 0.05 * kids[-1] and all(a < b for a, b in zip(kids, kids[1:]))


def test_missing_weights_say_what_to_provide(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(VisionSynthError) as error:
        load_extractor("inception")
    text = str(error.value)
    for needed in (WEIGHTS_ENV, "quality.fidelity.weights", "pt_inception-2015-12-05-6726825d.pth",
                   "cannot be downloaded", "fidelity: proxy"):
        assert needed in text
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(VisionSynthError, match=r"nowhere.pth \(\$VISION_SYNTH_FID_WEIGHTS\): .* file not found"):
        load_extractor("inception")


def test_weights_of_another_network_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(VisionSynthError, match="not Inception-v3 FID weights"):
        load_extractor("inception", weights=path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(VisionSynthError, match="not a torch state dict"):
        load_extractor("inception", weights=path)


def test_proxy_is_seeded_and_labelled(small_inception):
    images = [s.image for s in real(4, seed=6)]
    a = load_extractor("proxy", seed=3)
    first = a(images)
    _network.cache_clear()  # build it again from the seed
    b = load_extractor("proxy", seed=3)
    assert b.model is not a.model and np.allclose(b(images), first)
    assert not np.allclose(load_extractor("proxy", seed=4)(images), first)
    assert a.is_proxy and "proxy" in a.label and "not the FID network" in a.label and a.weights is None
