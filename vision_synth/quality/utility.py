"""Utility of synthetic data, train-on-synthetic test-on-real: the project's detector
(vision_synth/detector.py) trained on (a) the real training images and on (b) the same images plus
the synthetic dataset, with one budget (model, steps, image size, seed), both scored by COCOeval on
the same held-out real images. The delta in AP is what the synthetic data bought.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision_synth.coco.merge import merge_datasets
from vision_synth.coco.reader import load_coco
from vision_synth.coco.split import assign_splits, subset
from vision_synth.coco.writer import write_atomic
from vision_synth.detector import DetectionMetrics, TrainConfig, evaluate_detector, train_detector
from vision_synth.errors import DatasetError

ARMS = ("real", "real+synthetic")


@dataclass(frozen=True)
class UtilityRun:
    arm: str
    seed: int
    metrics: DetectionMetrics
    train_seconds: float
    final_loss: float


@dataclass
class UtilityResult:
    train: TrainConfig
    runs: list[UtilityRun]
    images: dict[str, int]  # real_train, synthetic, val
    dropped_annotations: int  # synthetic annotations of classes the reference does not have
    seconds: float

    def arm(self, name: str) -> list[UtilityRun]:
        return [r for r in self.runs if r.arm == name]

    def mean(self, name: str, metric: str = "ap") -> float:
        return float(np.mean([getattr(r.metrics, metric) for r in self.arm(name)]))

    @property
    def delta_ap(self) -> float:
        return self.mean("real+synthetic") - self.mean("real")

    @property
    def delta_ap50(self) -> float:
        return self.mean("real+synthetic", "ap50") - self.mean("real", "ap50")

    def per_class(self) -> dict[str, dict[str, float]]:
        """class → {real, real+synthetic, delta}: AP averaged over seeds."""
        names = list(dict.fromkeys(n for r in self.runs for n in r.metrics.per_class))
        out = {}
        for name in names:
            means = {arm: float(np.mean([r.metrics.per_class.get(name, 0.0) for r in self.arm(arm)])) for arm in ARMS}
            out[name] = {**means, "delta": means["real+synthetic"] - means["real"]}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "train": self.train.model_dump(mode="json"),
            "seeds": sorted({r.seed for r in self.runs}),
            "images": self.images,
            "dropped_synthetic_annotations": self.dropped_annotations,
            "ap": {arm: self.mean(arm) for arm in ARMS},
            "ap50": {arm: self.mean(arm, "ap50") for arm in ARMS},
            "delta_ap": self.delta_ap,
            "delta_ap50": self.delta_ap50,
            "per_class_ap": self.per_class(),
            "runs": [{"arm": r.arm, "seed": r.seed, "ap": r.metrics.ap, "ap50": r.metrics.ap50,
                      "per_class": r.metrics.per_class, "detections": r.metrics.detections,
                      "train_seconds": round(r.train_seconds, 2), "final_loss": r.final_loss} for r in self.runs],
            "seconds": round(self.seconds, 2),
        }


def _stage_folder(folder: Path, coco: dict[str, Any], images: Path) -> Path:
    """A dataset folder (annotations.json, images → symlink to `images`) that merge can read."""
    folder.mkdir(parents=True)
    write_atomic(folder / "annotations.json", json.dumps(coco, separators=(",", ":")))
    (folder / "images").symlink_to(Path(images).resolve(), target_is_directory=True)
    return folder


def real_split(reference: Path, reference_images: Path, val_fraction: float, split_seed: int
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train, val) COCO dicts of a seeded image split of the reference (whatever its images' own
    `synthetic` flags say: the reference is what the check treats as real)."""
    dataset = load_coco(reference, reference_images)
    ids = assign_splits(dataset, (1.0 - val_fraction, val_fraction), seed=split_seed, allow_synthetic_eval=True)
    info = {**dataset.info, "split_seed": split_seed, "val_fraction": val_fraction}
    return (subset(dataset, ids["train"], {**info, "split": "train"}),
            subset(dataset, ids["val"], {**info, "split": "val"}))


def _keep_categories(path: Path, names: set[str]) -> int:
    """Drop the categories of `path` not in `names`, with their annotations; returns how many
    annotations went."""
    data = json.loads(path.read_text())
    keep = {c["id"] for c in data["categories"] if c["name"] in names}
    before = len(data["annotations"])
    data["categories"] = [c for c in data["categories"] if c["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] in keep]
    write_atomic(path, json.dumps(data, separators=(",", ":")))
    return before - len(data["annotations"])


def measure_utility(synthetic: Path, synthetic_images: Path, reference: Path, reference_images: Path,
                    train: TrainConfig, seeds: list[int], val_fraction: float = 0.3, split_seed: int = 0,
                    reference_val: Path | None = None, reference_val_images: Path | None = None,
                    progress: bool = False) -> UtilityResult:
    """Train both arms for every seed and score them on the held-out real images: `reference_val`
    when given (then all of `reference` trains), else a seeded `val_fraction` of `reference`."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vision_synth_utility_") as tmp:
        tmp = Path(tmp)
        if reference_val is not None:
            real_train = json.loads(Path(reference).read_text())
            val_json, val_images = Path(reference_val), Path(reference_val_images or Path(reference_val).parent)
        else:
            real_train, val = real_split(reference, reference_images, val_fraction, split_seed)
            val_json, val_images = tmp / "real_val.json", Path(reference_images)
            write_atomic(val_json, json.dumps(val, separators=(",", ":")))
        train_dir = _stage_folder(tmp / "real_train", real_train, reference_images)
        synthetic_coco = json.loads(Path(synthetic).read_text())
        synthetic_dir = _stage_folder(tmp / "synthetic", synthetic_coco, synthetic_images)
        combined = merge_datasets([train_dir, synthetic_dir], tmp / "combined", link="sym")
        dropped = _keep_categories(combined.out / "annotations.json", {c["name"] for c in real_train["categories"]})
        if not load_coco(val_json, val_images).annotations:
            raise DatasetError(f"{val_json}: the held-out real split has no annotations to score on")
        arms = {"real": (train_dir / "annotations.json", Path(reference_images)),
                "real+synthetic": (combined.out / "annotations.json", combined.out / "images")}
        runs = []
        for seed in seeds:
            config = train.model_copy(update={"seed": int(seed)})
            for arm, (coco_file, images) in arms.items():
                detector = train_detector(coco_file, images, config, progress=progress)
                metrics = evaluate_detector(detector, val_json, val_images, progress=progress)
                runs.append(UtilityRun(arm, int(seed), metrics, detector.seconds,
                                       float(detector.losses[-1]) if detector.losses else float("nan")))
        images = {"real_train": len(real_train["images"]), "synthetic": len(synthetic_coco["images"]),
                  "val": len(load_coco(val_json, val_images, check_files=False).images)}
    return UtilityResult(train, runs, images, dropped, time.perf_counter() - start)
