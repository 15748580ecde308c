"""Time per added instance of each augment-rare source, and the learned model's CPU training speed.

  python tools/bench_rare.py [--images 40] [--size 128] [--add 20] [--train-steps 40] [--sample-steps 20]

Generates a small surface_defects dataset (vision_synth.runner.generate), thins one class (crack) to
10 instances by dropping the other crack annotations and treats its images as real (their pixels stay: fine for timing, not for
training a detector), then runs augment-rare once per source on it, adding --add cracks. Reports
wall seconds per added instance (reading, pasting, writing included) and the generation part alone;
for learned, sampling (and DCR) is included in generation and training is timed apart.
inpaint runs with tiny random-weight pipeline folders (vision_synth.diffusion.tiny, no download), so
its figure is pipeline overhead at 2 steps on this machine, not the cost of a real inpainting model;
pass --inpaint-model FOLDER (a local inpainting pipeline) for that.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision_synth.config import load_config  # noqa: E402
from vision_synth.rare.dataset import augment_rare  # noqa: E402
from vision_synth.rare.learned import TrainSpec, train  # noqa: E402
from vision_synth.rare.policy import RarePolicy  # noqa: E402
from vision_synth.runner import generate  # noqa: E402

CLASS, KEEP = "crack", 10


def thin(annotations: Path, out: Path) -> int:
    data = json.loads(annotations.read_text())
    cid = next(c["id"] for c in data["categories"] if c["name"] == CLASS)
    kept, seen = [], 0
    for ann in data["annotations"]:
        if ann["category_id"] == cid:
            seen += 1
            if seen > KEEP:
                continue
        kept.append(ann)
    # the generated images stand in for a real dataset: drop their synthetic flags, so that the pure-real
    # eval split can be drawn from them
    images = [{k: v for k, v in im.items() if k != "synthetic"} for im in data["images"]]
    kept = [{k: v for k, v in a.items() if k not in ("synthetic", "source")} for a in kept]
    out.write_text(json.dumps({**data, "images": images, "annotations": kept}))
    return min(seen, KEEP)


def _tiny_inpaint(tmp: Path) -> Path:
    from vision_synth.diffusion.tiny import save_tiny_models

    return save_tiny_models(tmp / "tiny", REPO / "tests" / "assets" / "tiny_clip").inpaint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--add", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--inpaint-model", help="local inpainting pipeline folder (default: tiny random weights)")
    parser.add_argument("--inpaint-steps", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = load_config(REPO / "configs/surface_defects.yaml", num_images=args.images,
                             image={"width": args.size, "height": args.size, "format": "png"})
        start = time.perf_counter()
        generate(config, tmp / "ds", show_progress=False)
        print(f"dataset: {args.images} images {args.size}×{args.size} in {time.perf_counter() - start:.1f}s")
        coco = tmp / "thinned.json"
        kept = thin(tmp / "ds" / "annotations.json", coco)
        print(f"{CLASS} thinned to {kept} instances")

        start = time.perf_counter()
        result = train(coco, tmp / "ds" / "images", TrainSpec(CLASS, steps=args.train_steps, size=32,
                                                             batch_size=args.batch_size, checkpoint_every=10**9),
                       tmp / "model", eval_ratio=0.2, show_progress=False)
        print(f"learned: {result.steps_per_second:.2f} training steps/s on {result.device} "
              f"(batch {args.batch_size}, 32×32×4 crops, {result.crops} crops; "
              f"{time.perf_counter() - start:.1f}s with loading and saving)")

        sources = {
            "copy-paste": {"source": "copy-paste"},
            "procedural": {"source": "procedural", "defect": {"category": CLASS, "kind": "crack"}},
            "learned": {"source": "learned", "model": str(tmp / "model"), "sample_steps": args.sample_steps},
            "inpaint": {"source": "inpaint", "inpaint": {
                "mode": "inpaint-insert", "model": args.inpaint_model or str(_tiny_inpaint(tmp)),
                "steps": args.inpaint_steps, "safety_checker": False,
                "prompts": {CLASS: {"prompt": "a thin dark crack on a metal surface"}}}},
        }
        print(f"{'source':<12}{'added':>7}{'s/inst (all)':>14}{'s/inst (gen)':>14}")
        for name, per in sources.items():
            others = {c.name: {"target": 0} for c in config.categories if c.name != CLASS}
            policy = RarePolicy.model_validate({"seed": 0, "eval": {"ratio": 0.2}, "max_synthetic_fraction": 0.95,
                                                "classes": {CLASS: {**per, "target": KEEP + args.add}, **others}})
            start = time.perf_counter()
            summary = augment_rare(coco, tmp / "ds" / "images", policy, tmp / f"out-{name}", show_progress=False)
            wall = time.perf_counter() - start
            cid = next(c.id for c in config.categories if c.name == CLASS)
            added = summary.added[cid]
            gen = summary.seconds.get(name, float("nan"))
            print(f"{name:<12}{added:>7}{wall / max(added, 1):>14.4f}{gen / max(added, 1):>14.4f}"
                  + (f"  (DCR rejected {summary.rejected_dcr.get(CLASS, 0)})" if name == "learned" else "")
                  + ("  (tiny random weights)" if name == "inpaint" and not args.inpaint_model else ""))


if __name__ == "__main__":
    main()
