"""Rare classes from 12 examples, measured: what `vision-synth augment-rare` adds to a one-image, 12-instance
real dataset, scored by the quality gate's utility check (paired seeds, bootstrap interval).

    python tools/bench_fewshot.py                       # every case on nuclei_dev (train_few → val)
    python tools/bench_fewshot.py --cases default light # some of them

Candidates, all made from train_few by the product's own commands:
  placebo   `augment`: flips and 90° rotations of the real image (nothing new);
  light     `augment`: the hand-set copy-paste of the few-shot issue (geometric/colour pipeline,
            48 copies, 1–4 pastes each);
  default   `augment-rare --target 24 --eval none`: the default policy (copy-paste, share capped at 0.5);
  default48 the default paste settings with 48 instances added (`--target 60`, share cap 0.8);
  learned   the learned source (`defects train` on train_few, 2,000 steps) with the same amount;
  mixed     half copy-paste, half learned (the two outputs' new images together).
val is never trained on, nor used to make a candidate. Prints each verdict and interval, the learned
crops' fidelity, diversity and DCR figures, the times; writes --work/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utility import NUCLEI, REPO, augment, placebo_pipeline  # noqa: E402

CASES = ("placebo", "light", "default", "default48", "learned", "mixed")


def cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "vision_synth.cli", *argv], check=True, stdout=subprocess.DEVNULL)


def augment_rare(out: Path, train: Path, policy: dict | None, *flags: str) -> Path:
    """`vision-synth augment-rare` of train_few; returns the output folder."""
    argv = ["augment-rare", "--coco", str(train / "annotations.json"), "--images", str(train / "images"),
            "--out", str(out), "--eval", "none", "--overwrite", "--quiet", *flags]
    if policy is not None:
        path = out.with_suffix(".yaml")
        path.write_text(yaml.safe_dump(policy))
        argv += ["--config", str(path)]
    cli(*argv)
    return out


def learned_model(work: Path, train: Path, steps: int) -> tuple[Path, float]:
    """`vision-synth defects train` on train_few (resumes, so a second bench run reuses it)."""
    folder = work / "learned_model"
    start = time.perf_counter()
    cli("defects", "train", "--coco", str(train / "annotations.json"), "--images", str(train / "images"),
        "--category", "nucleus", "--out", str(folder), "--steps", str(steps), "--quiet")
    return folder, time.perf_counter() - start


def merged_new_images(a: Path, b: Path, out: Path) -> Path:
    """A dataset folder holding the real image and the new images of two augment-rare outputs."""
    from vision_synth.files import write_json

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    first = json.loads((a / "annotations_train.json").read_text())
    second = json.loads((b / "annotations_train.json").read_text())
    images, annotations = list(first["images"]), list(first["annotations"])
    next_image = max(im["id"] for im in images) + 1
    next_ann = max(x["id"] for x in annotations) + 1
    renamed = {}
    for im in second["images"]:
        if not im.get("synthetic"):
            continue
        renamed[im["id"]] = next_image
        images.append({**im, "id": next_image, "file_name": f"b_{im['file_name']}"})
        next_image += 1
    for ann in second["annotations"]:
        if ann["image_id"] in renamed:
            annotations.append({**ann, "id": next_ann, "image_id": renamed[ann["image_id"]]})
            next_ann += 1
    for im in images:
        link = out / "images" / im["file_name"]
        source = (b / "images" / im["file_name"][2:]) if im["file_name"].startswith("b_") else a / "images" / im["file_name"]
        if not link.exists():
            link.symlink_to(source.resolve())
    write_json(out / "annotations_train.json", {**first, "images": images, "annotations": annotations})
    return out


def main(argv: list[str] | None = None) -> int:
    from vision_synth.detector_spec import TrainConfig
    from vision_synth.quality.spec import UtilitySpec
    from vision_synth.quality.utility import measure_utility

    defaults = UtilitySpec()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=NUCLEI, help="folder with train_few/ and val/ (COCO + images/)")
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench_fewshot")
    p.add_argument("--cache", type=Path, default=REPO / "out" / "bench_utility" / "real_cache",
                   help="real-only runs (shared with bench_utility: the same arm)")
    p.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    p.add_argument("--max-seeds", type=int, default=defaults.max_seeds)
    p.add_argument("--learned-steps", type=int, default=2000)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = p.parse_args(argv)

    train, val = args.data / "train_few", args.data / "val"
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    summary_file = work / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    start = time.perf_counter()
    amount = {"rare_below": 60, "max_synthetic_fraction": 0.8}  # 48 instances added to the 12 real ones
    folders: dict[str, tuple[Path, str]] = {}
    wanted = set(args.cases)
    if "placebo" in wanted:
        folders["placebo"] = (augment(work / "placebo", {"pipeline": str(placebo_pipeline(work / "placebo_pipeline.yaml")),
                                                          "copies": 48}, train), "annotations.json")
    if "light" in wanted:
        geometric = REPO / "configs" / "pipelines" / "geometric_color.yaml"
        folders["light"] = (augment(work / "light", {"pipeline": str(geometric), "copies": 48,
                                                      "copy_paste": {"count": [1, 4]}}, train), "annotations.json")
    if "default" in wanted:
        folders["default"] = (augment_rare(work / "default", train, None, "--target", "24"), "annotations_train.json")
    if wanted & {"default48", "mixed"}:
        folders["default48"] = (augment_rare(work / "default48", train, amount), "annotations_train.json")
    if wanted & {"learned", "mixed"}:
        model, seconds = learned_model(work, train, args.learned_steps)
        summary["learned_training_seconds"] = round(seconds, 1)
        learned_policy = {**amount, "classes": {"nucleus": {"source": "learned", "model": str(model)}}}
        folders["learned"] = (augment_rare(work / "learned", train, learned_policy), "annotations_train.json")
        report = json.loads((work / "learned" / "rare_report.json").read_text())
        summary["learned_crops"] = report["learned_crops"]["nucleus"]
        q = summary["learned_crops"]
        print(f"learned crops: precision {q['precision']:.2f}, recall {q['recall']:.2f}, diversity ratio "
              f"{q['diversity_ratio']:.2f}, DCR close fraction {q['dcr']['close_fraction']:.2f}, mask solidity "
              f"{q['learned']['mask_solidity']:.2f} (real {q['real']['mask_solidity']:.2f}), intensity "
              f"{q['learned']['intensity_mean']:.0f} (real {q['real']['intensity_mean']:.0f})", flush=True)
    if "mixed" in wanted:
        half = {"rare_below": 36, "max_synthetic_fraction": 0.8}  # 24 + 24
        a = augment_rare(work / "mixed_copy", train, half)
        b = augment_rare(work / "mixed_learned", train, {**half, "classes": {"nucleus": {
            "source": "learned", "model": str(work / "learned_model")}}})
        folders["mixed"] = (merged_new_images(a, b, work / "mixed"), "annotations_train.json")
    print(f"candidates made in {time.perf_counter() - start:.1f} s", flush=True)

    config = TrainConfig(device="cpu")
    for name in args.cases:
        folder, annotations = folders[name]
        t0 = time.perf_counter()
        result = measure_utility(folder / annotations, folder / "images", train / "annotations.json",
                                 train / "images", config, args.seeds, reference_val=val / "annotations.json",
                                 reference_val_images=val / "images", max_seeds=args.max_seeds, cache=args.cache)
        data = result.to_json()
        real, syn = result.values("real"), result.values("real+synthetic")
        summary[name] = {"verdict": result.verdict, "relative_median_delta": result.relative_median_delta,
                         "interval": list(result.interval), "arms": data["arms"], "paired": data["paired"],
                         "seeds_better": int((syn > real).sum()), "seeds": len(real),
                         "synthetic_images": result.images["synthetic"],
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name:10s} {result.line()}  better on {int((syn > real).sum())}/{len(real)} seeds "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
        summary_file.write_text(json.dumps(summary, indent=2))
    print(f"total {time.perf_counter() - start:.0f} s; summary: {summary_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
