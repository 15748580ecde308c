"""The `vision-synth check` subcommand: run the quality checks and the gate on a dataset directory,
then publish or reject it. Thin: parse, call `vision_synth.publish.check_and_publish`, report.
Exit 0 passed, 3 rejected (GateFailed), 2 bad input."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def add_check_parser(subparsers) -> argparse.ArgumentParser:
    """Register `check` on the `vision-synth` subparsers."""
    from vision_synth.cli import add_output_flags

    p = subparsers.add_parser(
        "check", help="quality gate: fidelity, duplicates, labels, memorisation, utility; publish or reject",
        description="Check a dataset against real reference images and apply the gate of the quality config. "
                    "Writes DIR/quality.json, DIR/report.html and the dataset card. A dataset that fails is left "
                    "rejected (annotations.rejected.json, REJECTED.md) and the exit code is 3.")
    p.add_argument("dir", help="dataset directory (annotations.json, images/)")
    p.add_argument("--reference", help="COCO json of the real reference images (default: quality.reference)")
    p.add_argument("--reference-images", help="folder of the reference images (default: images/ beside the json "
                                              "when there is one, else the json's folder)")
    p.add_argument("--config", help="YAML with the quality: section (or a dataset config that has one)")
    p.add_argument("--utility", action="store_true", default=None,
                   help="also train the detector with and without the synthetic data (slow)")
    p.add_argument("--fidelity", choices=("inception", "proxy", "off"),
                   help="features: inception (the FID weights, needs --fid-weights or $VISION_SYNTH_FID_WEIGHTS), "
                        "proxy (random-init network, reported as FID-proxy) or off")
    p.add_argument("--fid-weights", help="local Inception-v3 FID weights file (pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--remove-duplicates", action="store_true", default=None,
                   help="drop near-duplicate images from annotations.json instead of only reporting them")
    p.add_argument("--memorisation", action="store_true", default=None,
                   help="run the distance-to-closest-record check even without a learned generator")
    p.add_argument("--reference-val", help="held-out real COCO json for the utility check "
                                           "(default: a split of --reference)")
    p.add_argument("--reference-val-images", help="folder of the held-out images (default: beside the json)")
    p.add_argument("--steps", type=int, help="utility: training steps of each arm")
    p.add_argument("--image-size", type=int, help="utility: image size of the torchvision detectors "
                   "(fcos_compact, the default, keeps images at their own scale)")
    p.add_argument("--require", choices=("helps", "no-evidence"),
                   help="utility: the verdict the gate asks for (helps; no-evidence refuses only data that hurts); "
                        "implies --utility")
    p.add_argument("--seeds", help="utility: comma-separated training seeds, e.g. 0,1,2")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (features and training)")
    add_output_flags(p, overwrite=False)  # check updates the dataset's own reports in place
    p.set_defaults(func=cmd_check)
    return p


def _absolute(value: str | None) -> str | None:
    return None if value is None else str(Path(value).expanduser().resolve())


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from vision_synth.errors import VisionSynthError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VisionSynthError(f"--seeds {text!r}: expected whole numbers separated by commas") from None


def cmd_check(args) -> int:
    from vision_synth.publish import check_and_publish
    from vision_synth.quality.spec import load_quality_spec

    spec = load_quality_spec(
        args.config,
        **{"reference": _absolute(args.reference), "reference_images": _absolute(args.reference_images),
           "utility.enabled": args.utility, "fidelity.features": args.fidelity,
           "fidelity.weights": _absolute(args.fid_weights), "fidelity.device": args.device,
           "duplicates.action": "remove" if args.remove_duplicates else None,
           "memorisation.enabled": args.memorisation,
           "utility.reference_val": _absolute(args.reference_val),
           "utility.reference_val_images": _absolute(args.reference_val_images),
           "utility.train.steps": args.steps, "utility.train.image_size": args.image_size,
           "utility.train.device": args.device, "utility.seeds": _seeds(args.seeds),
           "utility.require": args.require})
    command = "vision-synth " + " ".join(shlex.quote(a) for a in getattr(args, "argv", None) or ["check", args.dir])
    report = check_and_publish(args.dir, spec, progress=not args.quiet, command=command)
    for line in report.lines():
        print(line)
    report.raise_if_failed()
    return 0
