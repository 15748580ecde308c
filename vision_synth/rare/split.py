"""The pure-real evaluation split of augment-rare: given as a COCO file, or drawn stratified by class.
Its images are never augmented, pasted from or onto, nor used to train a generator."""

from __future__ import annotations

from pathlib import Path

from vision_synth.coco.reader import CocoDataset, is_synthetic, load_coco
from vision_synth.coco.split import assign_splits
from vision_synth.errors import DatasetError


def eval_image_ids(dataset: CocoDataset, eval_coco: str | Path | None, ratio: float | None, seed: int,
                   ways_out: str = "give a real eval set or go without one") -> set[int]:
    """Image ids of the evaluation split (real images only). Fewer than 2 real images cannot be split:
    the error says so and ends with `ways_out` (the options of the command that was run)."""
    if eval_coco is not None:
        given = load_coco(eval_coco, dataset.images_dir, check_files=False)
        by_id = {im["id"]: im for im in dataset.images}
        for i, im in enumerate(given.images):
            mine = by_id.get(im["id"])
            if mine is None or mine["file_name"] != im["file_name"]:
                raise DatasetError(f"{eval_coco}: images[{i}] (id {im['id']}, {im['file_name']}) is not an image "
                                   f"of {dataset.path}")
            if is_synthetic(mine):
                raise DatasetError(f"{eval_coco}: images[{i}] (id {im['id']}) is synthetic; the eval split must be real")
        return {im["id"] for im in given.images}
    if ratio is None:
        return set()
    real = [im for im in dataset.images if not is_synthetic(im)]
    if len(real) < 2:
        raise DatasetError(f"{dataset.path}: {len(real)} real image(s) cannot be split into a training part and a "
                           f"pure-real eval split; {ways_out}")
    ids = assign_splits(dataset, (1.0 - ratio, ratio), by_class=True, seed=seed)
    return set(ids["val"])
