"""Fréchet distance, KID and precision/recall over features: exact against reference formulas,
zero for a set against itself, growing as the sets move apart."""

import numpy as np
import pytest
import scipy.linalg

from vision_synth.quality.fidelity import (frechet_distance, kernel_inception_distance, measure_fidelity,
                                           precision_recall)


def reference_fid(a, b):
    """The textbook formula with a general matrix square root (pytorch-fid's)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.parametrize("n_a, n_b, dim", [(30, 25, 8), (12, 9, 40), (50, 60, 16)])
def test_frechet_distance_matches_the_textbook_formula(n_a, n_b, dim):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_a, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(0.5, 1.3, size=(n_b, dim))
    assert frechet_distance(a, b) == pytest.approx(reference_fid(a, b), rel=1e-5, abs=1e-6)


@pytest.mark.slow  # importing torchmetrics takes seconds
def test_frechet_distance_matches_torchmetrics():
    torch = pytest.importorskip("torch")
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(80, 12)), rng.normal(0.3, 1.1, size=(70, 12))
    tm = fid_module._compute_fid(torch.tensor(a.mean(0)), torch.tensor(np.cov(a, rowvar=False)),
                                 torch.tensor(b.mean(0)), torch.tensor(np.cov(b, rowvar=False)))
    assert frechet_distance(a, b) == pytest.approx(float(tm), rel=1e-6)


@pytest.mark.parametrize("n, dim", [(20, 64), (100, 10)])  # both trace routes (n <= dim, n > dim)
def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_shift(n, dim):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(n, dim))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    values = [frechet_distance(a, a + rng.normal(0, s, a.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(values, values[1:]))


def unbiased_mmd(x, y):
    """Unbiased MMD² with k(x, y) = (xᵀy / d + 1)³, written out term by term."""
    m, d = len(x), x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


@pytest.mark.slow  # importing torchmetrics takes seconds
def test_kid_matches_torchmetrics():
    torch = pytest.importorskip("torch")
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 16)), rng.normal(0.4, 1.0, size=(40, 16))
    mean, _ = kernel_inception_distance(a, b, 40, 1, np.random.default_rng(0))
    assert mean == pytest.approx(float(kid_module.poly_mmd(torch.tensor(a), torch.tensor(b))), rel=1e-9)


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(15, 6)), rng.normal(0.4, 1.0, size=(15, 6))
    mean, std = kernel_inception_distance(a, b, 15, 1, np.random.default_rng(0))  # the whole sets: one subset
    assert std == 0.0
    assert mean == pytest.approx(unbiased_mmd(a, b), rel=1e-9)
    # unbiased: two samples of one distribution average close to 0 (it may go below 0)
    same = [kernel_inception_distance(rng.normal(size=(60, 16)), rng.normal(size=(60, 16)), 30, 20,
                                      np.random.default_rng(k))[0] for k in range(5)]
    assert abs(np.mean(same)) < 0.02 < kernel_inception_distance(a, b, 30, 20, np.random.default_rng(1))[0]


def test_kid_rises_with_distance_and_is_seeded():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(50, 8))
    values = [kernel_inception_distance(a, a + s, 25, 10, np.random.default_rng(0))[0] for s in (0.0, 0.5, 1.0, 2.0)]
    # a set against itself: near 0 (the unbiased estimate may fall below 0), far under any shift
    assert abs(values[0]) < 0.5 * values[1] and all(x < y for x, y in zip(values, values[1:]))
    assert (kernel_inception_distance(a, a + 1, 25, 10, np.random.default_rng(9))
            == kernel_inception_distance(a, a + 1, 25, 10, np.random.default_rng(9)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(a[:1], a, 10, 1, np.random.default_rng(0))


def test_precision_recall_of_the_same_and_of_disjoint_sets():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(60, 4))
    assert precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    far = a + 100.0
    assert precision_recall(a, far, k=3) == (0.0, 0.0)
    # generated samples collapsed onto a few reference points: precise, but poor recall
    collapsed = np.repeat(a[:3], 20, axis=0) + rng.normal(0, 1e-3, (60, 4))
    precision, recall = precision_recall(a, collapsed, k=3)
    assert precision == 1.0 and recall < 0.5


def test_measure_fidelity_names_proxy_metrics_as_proxy():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    crops = {"small": (a[:3], b[:3]), "big": (a, b)}
    result = measure_fidelity(a, b, proxy=True, extractor={"label": "proxy"}, rng=np.random.default_rng(0),
                              kid_subset_size=10, kid_subsets=5, pr_min_samples=50, class_features=crops, min_crops=5)
    data = result.to_json()
    assert "fid" not in data and "kid" not in data and data["fid_proxy"] == result.fid
    assert data["metric_names"]["fid_proxy"] == "FID-proxy"
    assert data[("precision_proxy")] is None and "pr_min_samples" in data["precision_recall_note"]
    assert data["per_class"]["small"]["fid_proxy"] is None and "too few" in data["per_class"]["small"]["note"]
    assert data["per_class"]["big"]["fid_proxy"] == pytest.approx(result.fid)
    real = measure_fidelity(a, b, proxy=False, extractor={}, rng=np.random.default_rng(0), kid_subset_size=10,
                            kid_subsets=5, pr_min_samples=10)
    assert real.to_json()["fid"] == pytest.approx(result.fid) and real.precision is not None
