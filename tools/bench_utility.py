"""Validate the utility check on real data: three candidate datasets whose worth is known, scored by
the quality gate's own utility measurement (paired seeds, verdict with a bootstrap interval).

    python tools/bench_utility.py                # nuclei_dev: train on train_few, score on val
    python tools/bench_utility.py --seeds 0 1 2  # fewer seeds (a quicker, weaker look)

Candidates, all made from train_few (12 real instances, one 128×128 image) by the product's own
`vision-synth augment` command:
  placebo   flips and 90° rotations of the real image (the detector already trains with them):
            nothing new, so the expected verdict is `no-evidence`;
  unlabelled the placebo with every other instance left unlabelled: `hurts`;
  shifted   the placebo with every mask (and so its box) shifted by half its size: `hurts`;
  light     copy-paste with geometric/colour variation, 48 images, 1–4 pastes each: a positive
            median delta.
val is never trained on. The real-only arm does not depend on the candidate and is trained once per
seed (a cache under --work). Prints each verdict, interval and time; writes --work/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUCLEI = REPO / "tests" / "assets" / "nuclei_dev"
EXPECTED = {"placebo": "no-evidence", "unlabelled": "hurts", "shifted": "hurts", "light": "positive median delta"}


def augment(out: Path, spec: dict, train: Path) -> Path:
    """`vision-synth augment` of the training set with a spec file; returns the dataset folder."""
    spec_file = out.with_suffix(".yaml")
    import yaml

    spec_file.write_text(yaml.safe_dump(spec))
    subprocess.run([sys.executable, "-m", "vision_synth.cli", "augment", "--coco", str(train / "annotations.json"),
                    "--images", str(train / "images"), "--spec", str(spec_file), "--out", str(out), "--format",
                    "png", "--overwrite", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return out


def placebo_pipeline(path: Path) -> Path:
    import albumentations as A

    A.save(A.Compose([A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(p=1.0)]), str(path),
           data_format="yaml")
    return path


def _relabelled(source: Path, out: Path, data: dict) -> Path:
    """A dataset folder with new annotations over the images of `source` (a symlink)."""
    from vision_synth.files import write_json

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "images").exists():
        (out / "images").symlink_to((source / "images").resolve(), target_is_directory=True)
    write_json(out / "annotations.json", data)
    return out


def shift_labels(source: Path, out: Path) -> Path:
    """A copy of a dataset whose every mask is moved by half its box size (right and down, clipped at
    the border); boxes and areas follow the moved masks."""
    from vision_synth.masks import decode_rle, encode_rle, rle_area_and_box

    data = json.loads((source / "annotations.json").read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    kept = []
    for ann in data["annotations"]:
        h, w = sizes[ann["image_id"]]
        mask = decode_rle(ann["segmentation"]) if isinstance(ann["segmentation"], dict) else None
        if mask is None:
            from vision_synth.masks import segmentation_to_mask

            mask = segmentation_to_mask(ann["segmentation"], h, w)
        dx, dy = int(round(ann["bbox"][2] / 2)), int(round(ann["bbox"][3] / 2))
        moved = np.zeros_like(mask, dtype=bool)
        moved[dy:, dx:] = mask[: h - dy, : w - dx]
        if not moved.any():
            continue
        rle = encode_rle(moved[None])[0]
        area, box = rle_area_and_box(rle)
        kept.append({**ann, "segmentation": rle, "area": area, "bbox": box})
    data["annotations"] = kept
    return _relabelled(source, out, data)


def drop_half(source: Path, out: Path) -> Path:
    """A copy of a dataset with every other instance of each image left unlabelled (its pixels stay:
    the detector learns that those nuclei are background)."""
    data = json.loads((source / "annotations.json").read_text())
    kept, seen = [], {}
    for ann in data["annotations"]:
        k = seen[ann["image_id"]] = seen.get(ann["image_id"], -1) + 1
        if k % 2 == 0:
            kept.append(ann)
    data["annotations"] = kept
    return _relabelled(source, out, data)


def main(argv: list[str] | None = None) -> int:
    from vision_synth.detector_spec import TrainConfig
    from vision_synth.quality.spec import UtilitySpec
    from vision_synth.quality.utility import measure_utility

    defaults = UtilitySpec()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=NUCLEI, help="folder with train_few/ and val/ (COCO + images/)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench_utility")
    p.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    p.add_argument("--max-seeds", type=int, default=defaults.max_seeds)
    p.add_argument("--steps", type=int, default=TrainConfig().steps)
    p.add_argument("--cases", nargs="+", default=list(EXPECTED), choices=list(EXPECTED))
    args = p.parse_args(argv)

    train, val = args.data / "train_few", args.data / "val"
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    geometric = REPO / "configs" / "pipelines" / "geometric_color.yaml"
    start = time.perf_counter()
    placebo = augment(work / "placebo", {"pipeline": str(placebo_pipeline(work / "placebo_pipeline.yaml")),
                                         "copies": 48}, train)
    candidates = {
        "placebo": placebo,
        "unlabelled": drop_half(placebo, work / "unlabelled"),
        "shifted": shift_labels(placebo, work / "shifted"),
        "light": augment(work / "light", {"pipeline": str(geometric), "copies": 48,
                                          "copy_paste": {"count": [1, 4]}}, train),
    }
    print(f"candidates made in {time.perf_counter() - start:.1f} s")
    config = TrainConfig(steps=args.steps, device="cpu")
    summary_file = work / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    for name in args.cases:
        folder = candidates[name]
        t0 = time.perf_counter()
        result = measure_utility(folder / "annotations.json", folder / "images", train / "annotations.json",
                                 train / "images", config, args.seeds, reference_val=val / "annotations.json",
                                 reference_val_images=val / "images", max_seeds=args.max_seeds,
                                 cache=work / "real_cache")
        seconds = time.perf_counter() - t0
        data = result.to_json()
        summary[name] = {"expected": EXPECTED[name], "verdict": result.verdict,
                         "relative_median_delta": result.relative_median_delta, "interval": list(result.interval),
                         "arms": data["arms"], "seconds": round(seconds, 1),
                         "train_seconds_per_run": round(float(np.mean([r.train_seconds for r in result.runs])), 1)}
        print(f"{name:8s} expected {EXPECTED[name]:22s} {result.line()}  [{seconds:.0f} s]", flush=True)
        summary_file.write_text(json.dumps(summary, indent=2))
    print(f"total {time.perf_counter() - start:.0f} s; summary: {summary_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
