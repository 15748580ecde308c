"""Train a torchvision detector on a COCO train file and print COCOeval AP on a val file.

    python tools/train_detector.py --train out/ds/annotations_train.json --val out/ds/annotations_val.json \
        --model fcos_compact --steps 200

Images are looked up in the folder `images/` beside each json unless --train-images/--val-images say
otherwise. Nothing is downloaded: models start from scratch or from --weights (a local state dict).
Bad input exits 2 with a one-line error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from vision_synth.coco.reader import load_coco
from vision_synth.detector import MODELS, TrainConfig, evaluate_detector, save_detector, train_detector
from vision_synth.errors import ConfigError, VisionSynthError


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="COCO json to train on")
    p.add_argument("--val", required=True, help="COCO json to evaluate on")
    p.add_argument("--train-images", help="image folder of --train (default: images/ beside it)")
    p.add_argument("--val-images", help="image folder of --val (default: images/ beside it)")
    p.add_argument("--model", choices=MODELS, default=defaults.model)
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--image-size", type=int, default=defaults.image_size, help="shorter side, pixels")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--weights", help="local state dict to start from (default: from scratch)")
    p.add_argument("--crop-size", type=int, default=defaults.crop_size, help="training crop side, pixels")
    p.add_argument("--no-flips", action="store_true", help="no random flips and transposes")
    p.add_argument("--save", help="write the trained detector here (.pth)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def images_of(annotations: Path, images: str | None) -> Path:
    return Path(images) if images else annotations.parent / "images"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            config = TrainConfig(model=args.model, steps=args.steps, batch_size=args.batch_size,
                                 image_size=args.image_size, lr=args.lr, seed=args.seed, device=args.device,
                                 weights=args.weights, crop_size=args.crop_size, flips=not args.no_flips)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}") from None
        train, val = Path(args.train), Path(args.val)
        load_coco(val, images_of(val, args.val_images))  # a bad val set fails now, not after training
        detector = train_detector(train, images_of(train, args.train_images), config, progress=not args.quiet)
        print(f"trained {config.model} for {config.steps} steps in {detector.seconds:.1f} s "
              f"({detector.steps_per_second:.2f} steps/s on {detector.device}), final loss {detector.losses[-1]:.4f}")
        if args.save:
            save_detector(detector, args.save)
            print(f"saved {args.save}")
        metrics = evaluate_detector(detector, val, images_of(val, args.val_images), progress=not args.quiet)
        for line in metrics.lines():
            print(line)
    except VisionSynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
