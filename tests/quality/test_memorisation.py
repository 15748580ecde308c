"""Distance to closest record: a planted copy of a training sample is flagged; samples from the same
distribution sit where the training set's own neighbours do."""

import numpy as np
import pytest

from vision_synth.quality.memorisation import dcr


def test_dcr_flags_a_planted_copy():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 16))
    generated = rng.normal(size=(100, 16))
    generated[37] = train[123]  # memorised
    generated[60] = train[5] + 1e-6  # memorised, up to float noise
    result = dcr(generated, train)
    assert result.nearest[37] == 123 and result.distances[37] == pytest.approx(0.0, abs=1e-6)
    assert set(result.copies.tolist()) == {37, 60}
    assert result.min == pytest.approx(0.0, abs=1e-5)
    assert result.close[37] and result.close[60]
    data = result.to_json()
    assert data["copies"] == [37, 60] and data["min_normalised"] == pytest.approx(0.0, abs=1e-5)


def test_dcr_of_fresh_samples_matches_the_training_sets_own_spacing():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 8))
    fresh = rng.normal(size=(400, 8))
    result = dcr(fresh, train, close_quantile=0.05)
    assert len(result.copies) == 0
    assert 0.0 < result.close_fraction < 0.15  # about the 5% the training set has itself
    assert 0.7 < result.quantiles()["q50"] < 1.4  # median normalised DCR near 1
    assert result.reference_quantiles()["q50"] == pytest.approx(1.0)
    # a generator that only jitters its training images lands far below
    jitter = train[:200] + rng.normal(0, 0.05, (200, 8))
    assert dcr(jitter, train).close_fraction > 0.9


def test_dcr_needs_comparable_features():
    with pytest.raises(ValueError, match="at least 2 training samples"):
        dcr(np.zeros((3, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="one D"):
        dcr(np.zeros((3, 4)), np.zeros((5, 3)))
