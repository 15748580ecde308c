"""Split a COCO dataset into train/val/test annotation files beside its annotations.json.

Files: DIR/annotations_train.json, DIR/annotations_val.json and (with three ratios)
DIR/annotations_test.json. They share DIR/images and keep the image and annotation ids of
annotations.json, so every record can be traced back. Images flagged `"synthetic": true` go to train
only unless `allow_synthetic_eval`: a mixed real/synthetic dataset keeps a purely real val and test.
The same dataset, ratios and seed give the same split.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vision_synth.coco.reader import CocoDataset, is_synthetic, load_coco
from vision_synth.files import FILE_MODE, check_new_output, dumps_json, remove_stale_stages_in, stage_path
from vision_synth.seeding import rng_for_dataset
from vision_synth.errors import DatasetError, VisionSynthError

SPLIT_NAMES = ("train", "val", "test")


def dataset_paths(root: str | Path) -> tuple[Path, Path]:
    """(annotations.json, images folder) of a dataset folder; images default to the folder itself
    when it has no images/ subfolder (file names are then relative to the folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    images = root / "images"
    return root / "annotations.json", images if images.is_dir() else root


def split_file(root: str | Path, name: str) -> Path:
    return Path(root) / f"annotations_{name}.json"


def existing_splits(root: str | Path) -> dict[str, Path]:
    """The split files a dataset folder has, in train/val/test order."""
    return {name: split_file(root, name) for name in SPLIT_NAMES if split_file(root, name).is_file()}


def parse_ratios(text: str | Sequence[float]) -> tuple[float, ...]:
    """'0.8,0.1,0.1' → (0.8, 0.1, 0.1): two (train, val) or three (train, val, test) positive
    ratios summing to 1."""
    if isinstance(text, str):
        try:
            ratios = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise VisionSynthError(f"--ratios {text!r}: expected numbers separated by commas, "
                                   "e.g. 0.8,0.1,0.1") from None
    else:
        ratios = tuple(float(v) for v in text)
    shown = ",".join(f"{r:g}" for r in ratios)
    if len(ratios) not in (2, 3):
        raise VisionSynthError(f"--ratios {shown}: give 2 (train,val) or 3 (train,val,test) ratios")
    if not all(np.isfinite(r) and r > 0 for r in ratios):
        raise VisionSynthError(f"--ratios {shown}: every ratio must be greater than 0")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise VisionSynthError(f"--ratios {shown}: ratios must sum to 1 (they sum to {sum(ratios):g})")
    return ratios


@dataclass(frozen=True)
class SplitResult:
    files: dict[str, Path]
    images: dict[str, int]
    instances: dict[str, dict[str, int]]  # split → class name → instance count
    synthetic_in_train: int  # synthetic images kept out of val/test

    def lines(self) -> list[str]:
        out = []
        for name, path in self.files.items():
            per_class = ", ".join(f"{c} {n}" for c, n in self.instances[name].items())
            out.append(f"{name}: {self.images[name]} images ({per_class}) -> {path}")
        if self.synthetic_in_train:
            out.append(f"{self.synthetic_in_train} synthetic images kept in train (val/test are real only)")
        return out


def _split_sizes(n: int, ratios: Sequence[float]) -> list[int]:
    """Largest-remainder sizes of n items, each split getting at least one item."""
    exact = np.asarray(ratios) * n
    sizes = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[k] += 1
    for k in range(len(sizes)):
        if sizes[k] == 0:
            sizes[int(np.argmax(sizes))] -= 1
            sizes[k] = 1
    return sizes.tolist()


def random_assignment(n: int, ratios: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Split index (0..S-1) of each of n items: a shuffled cut at the ratio sizes."""
    assign = np.repeat(np.arange(len(ratios)), _split_sizes(n, ratios))
    return assign[rng.permutation(n)]


def stratified_assignment(counts: np.ndarray, ratios: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification (Sechidis et al., 2011) of images by their per-class instance counts
    (n_images × n_classes): the rarest class is dealt out first, each image to the split that still
    wants most of that class. Images without instances fill the splits that want most images."""
    n = counts.shape[0]
    ratios = np.asarray(ratios, float)
    wanted = ratios[:, None] * counts.sum(axis=0)[None, :]  # split × class instances still wanted
    wanted_images = ratios * n
    assign = np.full(n, -1)
    order = rng.permutation(n)  # the order in which images of a class are dealt
    tie = rng.random(len(ratios)) * 1e-9  # seeded tie-breaking between splits

    def give(i: int, scores: np.ndarray) -> None:
        best = np.flatnonzero(scores == scores.max())
        s = best[np.argmax(wanted_images[best] + tie[best])]
        assign[i] = s
        wanted[s] -= counts[i]
        wanted_images[s] -= 1

    while True:
        left = counts[assign < 0].sum(axis=0)
        present = np.flatnonzero(left > 0)
        if present.size == 0:
            break
        k = present[np.argmin(left[present])]
        for i in order[counts[order, k] > 0]:
            if assign[i] < 0:
                give(i, wanted[:, k])
    for i in order:
        if assign[i] < 0:
            give(i, wanted_images)
    return assign


def assign_splits(dataset: CocoDataset, ratios: Sequence[float], by_class: bool = False, seed: int = 0,
                  allow_synthetic_eval: bool = False) -> dict[str, list[int]]:
    """Image ids of each split (names from SPLIT_NAMES, as many as ratios), in id order."""
    ratios = parse_ratios(ratios)
    names = SPLIT_NAMES[: len(ratios)]
    images = sorted(dataset.images, key=lambda im: im["id"])
    kept_in_train = [] if allow_synthetic_eval else [im for im in images if is_synthetic(im)]
    pool = images if allow_synthetic_eval else [im for im in images if not is_synthetic(im)]
    if len(pool) < len(ratios):
        what = "images" if allow_synthetic_eval else "real (non-synthetic) images"
        hint = "" if allow_synthetic_eval else "; pass --allow-synthetic-eval to evaluate on synthetic images"
        raise DatasetError(f"{dataset.path}: {len(pool)} {what} cannot fill {len(ratios)} splits{hint}")
    rng = rng_for_dataset(seed, "split")
    if by_class:
        column = {c["id"]: k for k, c in enumerate(dataset.categories)}
        counts = np.zeros((len(pool), len(column)), np.int64)
        for row, im in enumerate(pool):
            for ann in dataset.annotations_of(im["id"]):
                counts[row, column[ann["category_id"]]] += 1
        assign = stratified_assignment(counts, ratios, rng)
    else:
        assign = random_assignment(len(pool), ratios, rng)
    for s, name in enumerate(names):
        if not (assign == s).any():
            raise DatasetError(f"{dataset.path}: split '{name}' would be empty; "
                               f"{len(pool)} images are too few for ratios {','.join(f'{r:g}' for r in ratios)}")
    ids = {name: [im["id"] for im, a in zip(pool, assign) if a == s] for s, name in enumerate(names)}
    ids["train"] = sorted(ids["train"] + [im["id"] for im in kept_in_train])
    return ids


def subset(dataset: CocoDataset, image_ids: Sequence[int], info: dict[str, Any]) -> dict[str, Any]:
    """A COCO dict of the given images and their annotations, ids unchanged, all categories."""
    chosen = set(image_ids)
    return {
        "info": info,
        "licenses": [],
        "categories": dataset.categories,
        "images": [im for im in dataset.images if im["id"] in chosen],
        "annotations": [a for a in dataset.annotations if a["image_id"] in chosen],
    }


def split_dataset(root: str | Path, ratios: str | Sequence[float] = (0.8, 0.1, 0.1), by_class: bool = False,
                  seed: int = 0, allow_synthetic_eval: bool = False, overwrite: bool = False) -> SplitResult:
    """Write DIR/annotations_{train,val[,test]}.json (atomically each) and remove a split file of an
    earlier run that this split does not produce. Split files already there are replaced only with
    `overwrite` (--overwrite)."""

    ratios = parse_ratios(ratios)
    annotations, images = dataset_paths(root)
    for path in existing_splits(root).values():
        check_new_output(path, overwrite, "split")
    dataset = load_coco(annotations, images)
    ids = assign_splits(dataset, ratios, by_class, seed, allow_synthetic_eval)
    names_of = dataset.category_names
    # every file of one run carries the same split_run (of the dataset and the settings), so a set
    # mixed by a run killed between its renames is told apart (export refuses it)
    settings = {"split_ratios": list(ratios), "split_seed": int(seed), "split_by_class": bool(by_class),
                "split_synthetic_eval": bool(allow_synthetic_eval)}
    run = hashlib.sha256(annotations.read_bytes() + json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    files, staged, n_images, instances = {}, {}, {}, {}
    remove_stale_stages_in(root)  # .annotations_NAME.json.partial-PID-… of a killed run
    try:
        for name, image_ids in ids.items():
            data = subset(dataset, image_ids, {**dataset.info, "split": name, **settings, "split_run": run})
            files[name] = split_file(root, name)
            staged[name] = stage_path(files[name])
            staged[name].write_text(dumps_json(data), encoding="utf-8")
            os.chmod(staged[name], FILE_MODE)
            n_images[name] = len(data["images"])
            per_class = {c["name"]: 0 for c in dataset.categories}
            for ann in data["annotations"]:
                per_class[names_of[ann["category_id"]]] += 1
            instances[name] = per_class
        for name in ids:  # all written: renamed into place one after the other
            os.replace(staged[name], files[name])
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    for name in SPLIT_NAMES:
        if name not in ids:
            split_file(root, name).unlink(missing_ok=True)
    kept = sum(1 for im in dataset.images if is_synthetic(im)) if not allow_synthetic_eval else 0
    return SplitResult(files, n_images, instances, kept)
