"""Utility (train on synthetic, test on real): both arms train with one budget on tiny images and are
scored on the same held-out real images; categories are matched by name."""

import math

from helpers import write_coco_dataset
from quality_helpers import real, synthetic
from vision_synth.detector import TrainConfig
from vision_synth.quality.utility import measure_utility

TINY = TrainConfig(steps=2, batch_size=2, image_size=64, warmup_steps=1, device="cpu")


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
