"""A small synthetic-as-real setup for tune: images of bright discs (one class, `disc`) on dark noise,
drawn with exact masks, split into a real train and a real val set that share no image; an augment
base (flips and 90° rotations); and the spec that ties them together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from helpers import write_coco_dataset

DISC = {1: "disc"}


def disc_samples(n_images: int, seed: int, size: int = 64):
    import cv2

    from vision_synth.seeding import rng_for
    from vision_synth.types import Instances, Provenance, Sample

    samples = []
    for i in range(n_images):
        rng = rng_for(seed, i)
        image = (rng.random((size, size, 3)) * 50).astype(np.uint8)
        masks = []
        for _ in range(int(rng.integers(3, 6))):
            m = np.zeros((size, size), np.uint8)
            r = int(rng.integers(4, 9))
            cv2.circle(m, (int(rng.integers(r, size - r)), int(rng.integers(r, size - r))), r, 1, -1)
            m = m.astype(bool)
            if any((m & prev).any() for prev in masks):
                continue
            image[m] = (200 + rng.integers(0, 55, 3)).astype(np.uint8)
            masks.append(m)
        samples.append(Sample(i, seed, image, Instances(np.stack(masks), [1] * len(masks)),
                              Provenance("test", synthetic=False)))
    return samples


def shifted(samples, fraction: float = 1.0):
    """The same images with every mask moved right and down by `fraction` of its box size (clipped
    at the border): labels that miss the objects they name."""
    from vision_synth.masks import derive_boxes
    from vision_synth.types import Instances

    out = []
    for s in samples:
        moved = []
        for m, (x, y, w, h) in zip(s.instances.masks, derive_boxes(s.instances.masks)):
            dx, dy = int(round(w * fraction)), int(round(h * fraction))
            n = np.zeros_like(m)
            n[dy:, dx:] = m[: m.shape[0] - dy, : m.shape[1] - dx]
            moved.append(n)
        out.append(s.replace(instances=Instances(np.stack(moved), s.instances.category_ids).without_empty()))
    return out


def placebo_pipeline(path: Path) -> Path:
    import albumentations as A

    A.save(A.Compose([A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(p=1.0)]), str(path), data_format="yaml")
    return path


def write_setup(root: Path, n_train: int = 3, n_val: int = 2, size: int = 64) -> dict[str, Path]:
    """train/, val/ (COCO + images), pipeline.yaml and base.yaml (augment: 2 copies, copy-paste) under root."""
    root = Path(root)
    train = write_coco_dataset(root / "train", disc_samples(n_train, seed=1, size=size), category_names=DISC)
    val = write_coco_dataset(root / "val", disc_samples(n_val, seed=2, size=size), category_names=DISC)
    placebo_pipeline(root / "pipeline.yaml")
    (root / "base.yaml").write_text(yaml.safe_dump({"pipeline": "pipeline.yaml", "copies": 2,
                                                    "copy_paste": {"count": [1, 1]}}))
    return {"train": train[0], "train_images": train[1], "val": val[0], "val_images": val[1],
            "base": root / "base.yaml", "root": root}


TINY_UTILITY = {"steps": 3, "batch_size": 2, "crop_size": 48, "warmup_steps": 1, "device": "cpu"}


def spec_data(setup: dict[str, Path], **changes) -> dict:
    data = {
        "base": {"kind": "augment", "config": "base.yaml"},
        "train": {"coco": "train/annotations.json", "images": "train/images"},
        "val": {"coco": "val/annotations.json", "images": "val/images"},
        "space": {"copy_paste.count": {"choices": [[1, 1], [2, 3]]},
                  "utility.real_share": {"choices": [0.25, 0.5]}},
        "budget": {"trials": 3, "seeds": 2, "max_seeds": 4, "eta": 2, "confirm_seeds": 6, "seed": 0},
        "utility": TINY_UTILITY,
    }
    data.update(changes)
    return data


def write_spec(setup: dict[str, Path], name: str = "tune.yaml", **changes) -> Path:
    path = setup["root"] / name
    path.write_text(yaml.safe_dump(spec_data(setup, **changes), sort_keys=False))
    return path
