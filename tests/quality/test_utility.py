"""Utility (train on synthetic, test on real): both arms train with one budget on tiny images and are
scored on the same held-out real images; categories are matched by name."""

import math

from helpers import write_coco_dataset
from quality_helpers import real, synthetic
from vision_synth.detector import TrainConfig
import numpy as np
import pytest

from vision_synth.quality.utility import (bootstrap_interval, collapsed_seeds, leaning, measure_utility,
                                          relative_median_delta, sign_test_p, verdict_of)

TINY = TrainConfig(steps=2, batch_size=2, crop_size=48, warmup_steps=1, device="cpu")


def test_a_tiny_utility_run_reports_finite_ap_for_both_arms(tmp_path):
    ref_json, ref_images = write_coco_dataset(tmp_path / "real", real(12, seed=1))
    # the synthetic set numbers its classes differently and has one the real set lacks
    syn_json, syn_images = write_coco_dataset(
        tmp_path / "synthetic", _renumbered(synthetic(8, seed=2)),
        category_names={7: "class1", 8: "class2", 9: "class3", 10: "extra"})
    result = measure_utility(syn_json, syn_images, ref_json, ref_images, TINY, seeds=[0, 1], val_fraction=0.34)

    assert [(r.arm, r.seed) for r in result.runs] == [("real", 0), ("real+synthetic", 0), ("real", 1),
                                                      ("real+synthetic", 1)]
    for run in result.runs:
        assert math.isfinite(run.metrics.ap) and 0.0 <= run.metrics.ap <= 1.0
        assert math.isfinite(run.metrics.ap50) and math.isfinite(run.final_loss)
        assert run.metrics.images == result.images["val"]  # both arms scored on the same real images
    assert result.images == {"real_train": 8, "synthetic": 8, "val": 4}
    assert result.dropped_annotations > 0  # the "extra" class is not in the real set
    assert math.isclose(result.delta_ap, result.mean("real+synthetic") - result.mean("real"))
    per_class = result.per_class()
    assert set(per_class) <= {"class1", "class2", "class3"}
    data = result.to_json()
    assert data["seeds"] == [0, 1] and data["train"]["steps"] == 2 and set(data["ap"]) == {"real", "real+synthetic"}
    assert data["arms"]["real"]["ap"] == [r.metrics.ap for r in result.arm("real")]
    assert [p["delta_ap"] for p in data["paired"]] == pytest.approx(
        [b.metrics.ap - a.metrics.ap for a, b in zip(result.arm("real"), result.arm("real+synthetic"))])
    assert data["verdict"] in ("helps", "hurts", "no-evidence") and len(data["interval"]) == 2


def _renumbered(samples):
    """Category ids 1, 2, 3 → 7, 8, 9, and the first instance of every other image becomes class 10."""
    from vision_synth.types import Instances

    out = []
    for s in samples:
        cats = s.instances.category_ids + 6
        if s.index % 2 == 0:
            cats[0] = 10
        out.append(s.replace(instances=Instances(s.instances.masks, cats)))
    return out


def test_the_reference_is_split_whatever_its_synthetic_flags(tmp_path):
    from vision_synth.quality.utility import real_split

    ref_json, ref_images = write_coco_dataset(tmp_path / "r", synthetic(10, seed=3))  # flagged synthetic
    train, val = real_split(ref_json, ref_images, 0.3, split_seed=0)
    assert (len(train["images"]), len(val["images"])) == (7, 3)
    assert not {im["id"] for im in train["images"]} & {im["id"] for im in val["images"]}
    assert real_split(ref_json, ref_images, 0.3, split_seed=0) == (train, val)  # seeded


def test_the_real_only_arm_is_the_same_whichever_synthetic_set_is_compared(tmp_path):
    ref_json, ref_images = write_coco_dataset(tmp_path / "real", real(6, seed=1))
    val_json, val_images = write_coco_dataset(tmp_path / "val", real(3, seed=4))
    a = write_coco_dataset(tmp_path / "a", synthetic(5, seed=2))
    b = write_coco_dataset(tmp_path / "b", synthetic(9, seed=3))
    config = TINY.model_copy(update={"steps": 3})
    results = [measure_utility(*s, ref_json, ref_images, config, seeds=[0, 1], reference_val=val_json,
                               reference_val_images=val_images) for s in (a, b)]
    real_a, real_b = ([(r.seed, r.metrics, r.final_loss) for r in res.arm("real")] for res in results)
    assert real_a == real_b  # same initialisation and real batches: identical detectors and AP
    assert [r.final_loss for r in results[0].arm("real+synthetic")] != [r.final_loss for r in results[1].arm("real+synthetic")]


def test_runs_are_reused_from_the_cache(tmp_path, monkeypatch):
    from vision_synth.quality import utility

    ref_json, ref_images = write_coco_dataset(tmp_path / "real", real(6, seed=1))
    val_json, val_images = write_coco_dataset(tmp_path / "val", real(3, seed=4))
    syn = write_coco_dataset(tmp_path / "a", synthetic(5, seed=2))
    other_syn = write_coco_dataset(tmp_path / "b", synthetic(5, seed=3))
    kwargs = dict(seeds=[0, 1], reference_val=val_json, reference_val_images=val_images, cache=tmp_path / "cache")
    first = measure_utility(*syn, ref_json, ref_images, TINY, **kwargs)
    trained = []
    real_run = utility._run
    monkeypatch.setattr(utility, "_run", lambda arm, *a, **k: trained.append(arm) or real_run(arm, *a, **k))
    second = measure_utility(*other_syn, ref_json, ref_images, TINY, **kwargs)
    assert trained == ["real+synthetic", "real+synthetic"]  # the real arm came from the cache
    assert [r.metrics for r in second.arm("real")] == [r.metrics for r in first.arm("real")]
    trained.clear()
    again = measure_utility(*syn, ref_json, ref_images, TINY, **{**kwargs, "seeds": [0, 1, 2]})
    assert trained == ["real", "real+synthetic"]  # the same set again: only the new seed is trained
    assert [r.metrics for r in again.arm("real+synthetic")][:2] == [r.metrics for r in first.arm("real+synthetic")]
    other = TINY.model_copy(update={"lr": 1e-3})  # another budget is another real arm
    trained.clear()
    measure_utility(*syn, ref_json, ref_images, other, **kwargs)
    assert trained.count("real") == 2


@pytest.mark.parametrize("real_ap, synthetic_ap, verdict", [
    ([0.40, 0.42, 0.38, 0.45, 0.41, 0.39], [0.48, 0.50, 0.44, 0.52, 0.47, 0.45], "helps"),  # every pair better
    ([0.40, 0.42, 0.38, 0.45, 0.41, 0.39], [0.15, 0.18, 0.12, 0.20, 0.16, 0.17], "hurts"),  # every pair worse
    ([0.40, 0.42, 0.38, 0.45, 0.41], [0.48, 0.50, 0.44, 0.52, 0.47], "no-evidence"),  # 5 of 5: 1 in 16 by chance
    ([0.40, 0.42, 0.38, 0.45, 0.41, 0.39, 0.40, 0.42, 0.43],
     [0.48, 0.50, 0.44, 0.52, 0.47, 0.45, 0.39, 0.47, 0.49], "helps"),  # 8 of 9 pairs better
    ([0.40, 0.42, 0.38, 0.45, 0.41], [0.44, 0.37, 0.42, 0.41, 0.43], "no-evidence"),  # both signs
    ([0.40, 0.03, 0.38, 0.45, 0.41], [0.15, 0.35, 0.12, 0.20, 0.16], "no-evidence"),  # one collapse flips a pair
])
def test_the_verdict_comes_from_the_paired_bootstrap_interval_and_the_sign_test(real_ap, synthetic_ap, verdict):
    real_ap, synthetic_ap = np.array(real_ap), np.array(synthetic_ap)
    lo, hi = bootstrap_interval(real_ap, synthetic_ap)
    point = relative_median_delta(real_ap, synthetic_ap)
    assert lo <= point <= hi
    assert verdict_of((lo, hi), sign_test_p(real_ap, synthetic_ap)) == verdict
    assert bootstrap_interval(real_ap, synthetic_ap) == (lo, hi)  # seeded


def test_the_sign_test_is_exact_and_two_sided():
    five = np.zeros(5)
    assert sign_test_p(five, five + 1) == pytest.approx(2 / 32)  # cannot pass below 6 pairs
    assert sign_test_p(np.zeros(6), np.ones(6)) == pytest.approx(2 / 64)
    assert sign_test_p(np.zeros(9), np.r_[np.ones(8), -1.0]) == pytest.approx(2 * 10 / 512)
    assert sign_test_p(five, five) == 1.0  # ties carry no direction


def test_collapsed_seeds_and_leaning():
    assert collapsed_seeds([0, 1, 2, 3, 4], np.array([0.4, 0.03, 0.38, 0.45, 0.41])) == [1]
    assert collapsed_seeds([0, 1, 2], np.array([0.4, 0.38, 0.41])) == []
    assert leaning(np.array([0.4, 0.4, 0.4, 0.4, 0.03]), np.array([0.2, 0.2, 0.2, 0.2, 0.3]))  # 4 of 5 worse
    assert not leaning(np.array([0.4, 0.4, 0.4, 0.4]), np.array([0.5, 0.5, 0.3, 0.3]))
    assert relative_median_delta(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == 0.0


def test_an_open_but_leaning_result_gets_more_seeds(tmp_path, monkeypatch):
    from vision_synth.detector import DetectionMetrics
    from vision_synth.quality import utility

    ref_json, ref_images = write_coco_dataset(tmp_path / "real", real(4, seed=1))
    val_json, val_images = write_coco_dataset(tmp_path / "val", real(2, seed=4))
    syn = write_coco_dataset(tmp_path / "a", synthetic(3, seed=2))
    # fixed AP per (arm, seed): synthetic worse on every seed but seed 1, where real collapsed
    real_ap = {0: 0.4, 1: 0.02, 2: 0.41, 3: 0.39, 4: 0.42, 5: 0.40, 6: 0.43, 7: 0.38, 8: 0.41}
    fake = lambda arm, seed, *a, **k: utility.UtilityRun(  # noqa: E731
        arm, seed, DetectionMetrics(real_ap[seed] if arm == "real" else (0.3 if seed == 1 else 0.2 + 0.01 * seed),
                                    0.5, {}, 2, 4, 10), 0.0, 0.0)
    monkeypatch.setattr(utility, "_run", fake)
    result = measure_utility(*syn, ref_json, ref_images, TINY, seeds=[0, 1, 2, 3, 4], reference_val=val_json,
                             reference_val_images=val_images, max_seeds=9)
    assert 5 < len(result.seeds) <= 9 and result.seeds == list(range(len(result.seeds)))
    assert result.verdict == "hurts"
    assert result.collapsed["real"] == [1]
    fixed = measure_utility(*syn, ref_json, ref_images, TINY, seeds=[0, 1, 2, 3, 4], reference_val=val_json,
                            reference_val_images=val_images)
    assert fixed.seeds == [0, 1, 2, 3, 4] and fixed.verdict == "no-evidence"  # no max_seeds: the seeds asked for, no more
