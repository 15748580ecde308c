"""`vision-synth augment-rare` and `vision-synth defects train|sample`. Thin: parse, call the library,
report; bad input raises VisionSynthError (the CLI prints one line and exits 2)."""

from __future__ import annotations

from pathlib import Path


def add_rare_parsers(subparsers) -> None:
    """Register `augment-rare` and `defects` (train, sample) on the `vision-synth` subparsers."""
    from vision_synth.cli import add_output_flags, seed_value

    p = subparsers.add_parser(
        "augment-rare", help="add instances of rare classes to a COCO dataset (real records kept unchanged)",
        description="Add copy-paste, procedural or learned instances of rare classes to a COCO dataset, "
                    "keeping a pure-real eval split. Writes OUT/annotations.json (all), annotations_train.json "
                    "(train on it), annotations_eval.json (real only), rare_report.json, dataset_card.md.")
    p.add_argument("--coco", required=True, help="COCO instances json")
    p.add_argument("--images", help="image folder (default: the json's folder)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="rare policy YAML (see configs/policies/rare_example.yaml); without it: "
                                     "classes below the median class count raised to it with copy-paste, "
                                     "synthetic share capped at 0.5")
    p.add_argument("--target", type=int, metavar="N", help="raise every class below N real instances to N "
                                                            "(replaces the policy's targets; needed for one class)")
    p.add_argument("--eval", metavar="FILE.json|none", dest="eval_split",
                   help="the pure-real eval split: a COCO file of real images of --coco, or none to keep no eval "
                        "split (replaces the policy's eval)")
    p.add_argument("--seed", type=seed_value, help="override the policy's seed")
    add_output_flags(p)
    p.set_defaults(func=cmd_augment_rare)

    d = subparsers.add_parser("defects", help="the learned defect source: a small joint image+mask diffusion model")
    dsub = d.add_subparsers(dest="defects_command", required=True)
    t = dsub.add_parser("train", help="train on 4-channel crops (RGB + mask) of one class")
    t.add_argument("--coco", required=True)
    t.add_argument("--images", help="image folder (default: the json's folder)")
    t.add_argument("--category", required=True, help="class name to learn")
    t.add_argument("--out", required=True, help="model folder (checkpoints, final model)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--size", type=int, default=32, help="crop size in pixels (multiple of 4)")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--checkpoint-every", type=int, default=200)
    t.add_argument("--eval-coco", help="pure-real eval split to leave out of training (COCO json)")
    t.add_argument("--eval-ratio", type=float, help="leave out the stratified eval split augment-rare draws "
                                                  "with this ratio and --seed")
    t.add_argument("--seed", type=seed_value, default=0)
    add_output_flags(t, overwrite=False)  # the model folder resumes from its last checkpoint
    t.set_defaults(func=cmd_defects_train)
    s = dsub.add_parser("sample", help="draw crop+mask pairs (RGBA PNG, alpha = mask)")
    s.add_argument("--model", required=True, help="model folder from `defects train`")
    s.add_argument("--num", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--steps", type=int, default=50, help="denoising steps")
    s.add_argument("--seed", type=seed_value, default=0)
    s.add_argument("--dcr-quantile", type=float, default=0.05,
                   help="reject crops nearer a training crop than this quantile of training NN distances")
    add_output_flags(s)
    s.set_defaults(func=cmd_defects_sample)


def cmd_augment_rare(args) -> int:
    from vision_synth.errors import VisionSynthError
    from vision_synth.rare.dataset import augment_rare
    from vision_synth.rare.policy import load_policy

    if args.target is not None and args.target < 1:
        raise VisionSynthError(f"--target {args.target}: must be at least 1")
    policy = load_policy(args.config, seed=args.seed, target=args.target, eval_coco=args.eval_split)
    summary = augment_rare(args.coco, args.images, policy, Path(args.out), policy_path=args.config or "policy",
                           overwrite=args.overwrite, show_progress=not args.quiet)
    for line in summary.lines():
        print(line)
    return 0


def cmd_defects_train(args) -> int:
    from vision_synth.rare.learned import TrainSpec, train

    spec = TrainSpec(category=args.category, steps=args.steps, size=args.size, batch_size=args.batch_size,
                     checkpoint_every=args.checkpoint_every, seed=args.seed)
    result = train(args.coco, args.images, spec, Path(args.out), eval_coco=args.eval_coco,
                   eval_ratio=args.eval_ratio, show_progress=not args.quiet)
    print(result.line())
    return 0


def cmd_defects_sample(args) -> int:
    from vision_synth.files import check_new_output
    from vision_synth.rare.learned import load_model, write_samples

    from vision_synth.errors import VisionSynthError

    if args.num < 1 or args.steps < 1:
        raise VisionSynthError("--num and --steps must be at least 1")
    if not 0 <= args.dcr_quantile <= 1:
        raise VisionSynthError(f"--dcr-quantile {args.dcr_quantile:g}: must lie in [0, 1]")
    check_new_output(Path(args.out), args.overwrite)  # before the model loads
    model = load_model(args.model, where="--model")
    print(write_samples(model, args.num, Path(args.out), seed=args.seed, steps=args.steps,
                        dcr_quantile=args.dcr_quantile, overwrite=args.overwrite, show_progress=not args.quiet))
    return 0
