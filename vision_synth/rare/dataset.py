"""`augment_rare`: add instances of rare classes to a COCO dataset, keeping every real record as it is.

Flow: load and validate → eval split (pure real, untouched) → real counts of the training part →
per-class plan (policy) → new images, each one training image with instances of one class pasted
→ OUT written aside and renamed into place. Real image and annotation records are written back as
the very dicts that were read (so they serialise to the same JSON); new images and annotations
follow, with ids above the largest real ones, `synthetic: true` and their `source`.

Files: OUT/annotations.json (all real + new), OUT/annotations_train.json (real training part + new:
train on this), OUT/annotations_eval.json (the pure-real eval split: evaluate on this; not written
with `eval: none`), OUT/rare_report.json and OUT/dataset_card.md (per-class real vs synthetic counts).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vision_synth.coco.reader import CocoDataset, load_coco
from vision_synth.coco.writer import sample_records, write_coco
from vision_synth.errors import ConfigError, DatasetError
from vision_synth.files import staged_output, write_atomic, write_json
from vision_synth.imageio import read_image, write_image
from vision_synth.quality.card import CardFacts, render_card
from vision_synth.rare.crops import class_crops
from vision_synth.rare.paste import LayerMaker, crop_layers, defect_layers, paste_onto
from vision_synth.rare.policy import ClassPlan, PasteSpec, RarePolicy, plan_counts, rare_threshold
from vision_synth.rare.stats import class_stats
from vision_synth.rare.split import eval_image_ids
from vision_synth.seeding import rng_for
from vision_synth.spec import integer
from vision_synth.types import Provenance, Sample

SYNTHETIC_PREFIX = "rare_"


@dataclass
class RareSummary:
    out: Path
    plans: list[ClassPlan]
    added: dict[int, int]
    eval_images: int
    train_images: int
    new_images: int
    # generation time per source (tools/bench_rare.py); not written to rare_report.json, whose
    # bytes depend on the input, the policy and the seed alone
    seconds: dict[str, float] = field(default_factory=dict)
    rejected_dcr: dict[str, int] = field(default_factory=dict)  # class → learned crops rejected as too close
    eval_counts: dict[int, int] = field(default_factory=dict)
    has_eval: bool = True  # False with `eval: none`: no pure-real eval split was kept
    policy_line: str = ""
    paste: dict[str, dict] = field(default_factory=dict)  # class → paste settings used (defaults resolved)
    learned: dict[str, dict] = field(default_factory=dict)  # class → crop_quality of its learned crops

    def table(self) -> list[str]:
        rows = [f"{'class':<16}{'real':>8}{'eval':>8}{'target':>8}{'cap':>8}{'added':>8}  source"]
        for p in self.plans:
            cap = "-" if p.cap >= 10**9 else str(p.cap)
            rows.append(f"{p.name:<16}{p.real:>8}{self.eval_counts.get(p.category_id, 0):>8}{p.target:>8}{cap:>8}"
                        f"{self.added.get(p.category_id, 0):>8}  {p.source or '-'}")
        return rows

    def lines(self) -> list[str]:
        held = (f"{self.eval_images} real eval images (never augmented)" if self.has_eval
                else "no pure-real eval split (eval: none): evaluate on real images of your own")
        out = [f"{self.out}: {self.train_images} real train images, {held}, {self.new_images} new images",
               *([self.policy_line] if self.policy_line else []), *self.table()]
        if not any(p.add for p in self.plans):
            out.append("nothing to add: no class is below its target (raise it with --target N)")
        short = [p.name for p in self.plans if self.added.get(p.category_id, 0) < p.add]
        if short:
            out.append(f"fewer instances than planned for: {', '.join(short)} (no free place found often enough)")
        for name, n in self.rejected_dcr.items():
            out.append(f"{name}: {n} learned crops rejected as too close to a training crop (DCR)")
        for name, q in self.learned.items():
            out.append(f"{name}: learned crops precision {q['precision']:.2f} (fidelity), recall {q['recall']:.2f} "
                       f"and diversity ratio {q['diversity_ratio']:.2f} against the {q['training_crops']} real crops")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": [{"name": p.name, "category_id": p.category_id, "real_train": p.real,
                         "real_eval": self.eval_counts.get(p.category_id, 0), "target": p.target,
                         "cap": None if p.cap >= 10**9 else p.cap, "planned": p.add,
                         "added": self.added.get(p.category_id, 0), "source": p.source} for p in self.plans],
            "policy": self.policy_line, "paste": self.paste,
            "eval_images": self.eval_images, "pure_real_eval_split": self.has_eval,
            "train_images": self.train_images, "new_images": self.new_images,
            "dcr_rejected": self.rejected_dcr, "learned_crops": self.learned,
        }


def _class_counts(dataset: CocoDataset, image_ids: set[int]) -> dict[int, int]:
    return dict(Counter(a["category_id"] for a in dataset.annotations
                        if a["image_id"] in image_ids and not a.get("iscrowd", 0)))


def _part_mask(policy: RarePolicy, source: str) -> np.ndarray | None:
    if policy.region is None:
        return None
    path = Path(policy.region)
    if not path.is_file():
        raise ConfigError(f"{source}: region: file {path} not found")
    return read_image(path, "L") >= 128


class _Sources:
    """Per class: how to make one layer. Built once (crops read, learned crops drawn and DCR-checked)."""

    def __init__(self, dataset: CocoDataset, policy: RarePolicy, train_ids: set[int], eval_ids: set[int],
                 policy_path: str) -> None:
        self.dataset, self.policy, self.train_ids, self.eval_ids = dataset, policy, train_ids, eval_ids
        self.policy_path = policy_path
        self.rejected: dict[str, int] = {}
        self.models: dict[int, str] = {}
        self.finishers: dict[int, Any] = {}  # class → step run on each new image after pasting (inpaint)
        self.paste: dict[str, PasteSpec] = {}  # class → the paste settings used (defaults resolved)
        self.learned: dict[str, dict] = {}  # class → fidelity, diversity and DCR of its learned crops

    def paste_spec(self, plan: ClassPlan) -> PasteSpec:
        """The policy's paste settings, those left unset following the class's real instances."""
        paste = self.policy.paste
        stats = class_stats(self.dataset, self.train_ids, plan.category_id)
        return paste.model_copy(update={
            "scale": paste.scale or stats.scale(),
            "rotation": paste.rotation if paste.rotation is not None else stats.rotation(),
            "color_jitter": paste.color_jitter if paste.color_jitter is not None else stats.color_jitter()})

    def maker(self, plan: ClassPlan) -> LayerMaker:
        per = self.policy.classes.get(plan.name)
        paste = self.paste_spec(plan)
        self.paste[plan.name] = paste
        if plan.source == "procedural":
            return defect_layers(per.defect, plan.category_id)
        if plan.source == "learned":
            cutouts = self._learned(plan, per)
            return crop_layers(cutouts, paste, self.policy.blend, plan.category_id, "learned")
        cutouts = class_crops(self.dataset, self.train_ids, plan.category_id)
        if not cutouts:
            raise DatasetError(f"{self.dataset.path}: class {plan.name!r} has no instance in the training part "
                               f"to take {'shapes' if plan.source == 'inpaint' else 'crops'} from; "
                               "choose source procedural or learned for it")
        if plan.source == "inpaint":
            from vision_synth.rare.inpaint import Inpainter, shape_layers

            inpainter = Inpainter(per.inpaint, plan.name, self.policy.seed,
                                  f"{self.policy_path}: classes.{plan.name}.inpaint")
            self.finishers[plan.category_id] = inpainter
            self.models[plan.category_id] = inpainter.model
            return shape_layers(cutouts, paste, plan.category_id)
        return crop_layers(cutouts, paste, self.policy.blend, plan.category_id, "copy-paste")

    def _learned(self, plan: ClassPlan, per) -> list:
        from vision_synth.rare.learned import check_training_images, load_model, sample_cutouts

        model = load_model(per.model, where=f"{self.policy_path}: classes.{plan.name}.model")
        eval_files = {im["file_name"] for im in self.dataset.images if im["id"] in self.eval_ids}
        check_training_images(model, eval_files, f"{self.policy_path}: classes.{plan.name}.model")
        self.models[plan.category_id] = str(per.model)
        drawn = sample_cutouts(model, plan.add + max(4, plan.add // 2), self.policy.seed,
                               steps=per.sample_steps, dcr_quantile=per.dcr_quantile)
        self.rejected[plan.name] = drawn.rejected
        self.learned[plan.name] = drawn.report
        cutouts = drawn.cutouts
        if not cutouts:
            raise DatasetError(f"{per.model}: every sampled crop was rejected (empty mask or DCR); "
                               "train longer or on more instances")
        return cutouts


def augment_rare(coco: str | Path, images: str | Path | None, policy: RarePolicy, out: str | Path,
                 policy_path: str = "policy", overwrite: bool = False, show_progress: bool = True) -> RareSummary:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DatasetError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
    dataset = load_coco(coco, images)
    eval_ids = _eval_split(dataset, policy)
    train_ids = {im["id"] for im in dataset.images} - eval_ids
    counts = _class_counts(dataset, train_ids)
    plans = plan_counts(policy, dataset.categories, counts, policy_path)
    below = rare_threshold(policy, dataset.categories, counts, policy_path)
    part = _part_mask(policy, policy_path)
    sources = _Sources(dataset, policy, train_ids, eval_ids, policy_path)
    seconds: dict[str, float] = {}
    makers = {}
    for p in plans:
        if p.add:
            start = time.perf_counter()
            makers[p.category_id] = sources.maker(p)
            seconds[p.source] = seconds.get(p.source, 0.0) + time.perf_counter() - start

    # built in .OUT.partial-PID-TOKEN; an existing OUT (--overwrite) is replaced only once the new one is whole
    with staged_output(out, replace=overwrite) as work:
        real_names = _copy_real_images(dataset, work / "images")
        new_images, new_anns, added, gen_seconds = _make_new_images(
            dataset, policy, plans, makers, sources.finishers, train_ids, part, work / "images", real_names,
            sources.models, show_progress)
        for k, v in gen_seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        summary = RareSummary(out, plans, added, len(eval_ids), len(train_ids), len(new_images), seconds,
                              sources.rejected, _class_counts(dataset, eval_ids), policy.has_eval,
                              _policy_line(policy, below), {k: v.model_dump(mode="json") for k, v in sources.paste.items()},
                              sources.learned)
        _write_files(work, dataset, policy, eval_ids, new_images, new_anns, summary)
    return summary


def _eval_split(dataset: CocoDataset, policy: RarePolicy) -> set[int]:
    """The pure-real eval split's image ids (none with `eval: none`)."""
    if not policy.has_eval:
        return set()
    return eval_image_ids(dataset, policy.eval.coco, policy.eval.ratio, policy.seed, ways_out=(
        "give a real eval set (--eval FILE.json, or eval: {coco: FILE.json} in --config) or go without one "
        "(--eval none, or eval: none in --config)"))


def _policy_line(policy: RarePolicy, below: int | None) -> str:
    """How the targets were chosen, in words (printed above the table, kept in the report)."""
    cap = f"synthetic share capped at {policy.max_synthetic_fraction:g}"
    if policy.target_per_class is not None:
        return f"policy: every class raised to {policy.target_per_class} instances, {cap}"
    if below is None:
        return f"policy: per-class targets only, {cap}"
    how = f"the median class count ({below})" if policy.rare_below == "median" else f"{below}"
    return f"policy: classes below {how} raised to it, {cap}"


def _copy_real_images(dataset: CocoDataset, folder: Path) -> set[str]:
    """Link (or copy) each real image file unchanged to OUT/images/<file_name>."""
    names = set()
    for im in dataset.images:
        src = dataset.image_file(im)
        dst = folder / im["file_name"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        names.add(im["file_name"])
    return names


def _make_new_images(dataset, policy, plans, makers, finishers, train_ids, part, folder, real_names, models, show_progress):
    from tqdm import tqdm

    by_id = {im["id"]: im for im in dataset.images}
    train = sorted(train_ids)
    clean = [i for i in train if not dataset.annotations_of(i)]
    pool = clean if policy.targets == "clean-first" and clean else train
    if not pool and any(p.add for p in plans):
        raise DatasetError(f"{dataset.path}: no training image to paste onto")
    remaining = {p.category_id: p.add for p in plans if p.add}
    typical = _typical_density(dataset, train)
    source_of = {p.category_id: p.source for p in plans}
    added = {p.category_id: 0 for p in plans}
    next_image = max((im["id"] for im in dataset.images), default=0) + 1
    next_ann = max((a["id"] for a in dataset.annotations), default=0) + 1
    new_images, new_anns = [], []
    seconds: dict[str, float] = {}
    failures = 0
    attempt = 0
    total = sum(remaining.values())
    bar = tqdm(total=total, desc="rare instances", unit="inst", disable=not show_progress)
    while remaining and failures < policy.max_attempts * max(total, 1):
        rng = rng_for(policy.seed, attempt)
        attempt += 1
        cid = max(remaining, key=lambda c: (remaining[c], -c))
        if policy.per_image is not None:
            count = integer(rng, policy.per_image)
            target = by_id[pool[int(rng.integers(len(pool)))]]
        else:  # following the target's own instance density
            target = by_id[pool[int(rng.integers(len(pool)))]]
            count = integer(rng, density_count(len(dataset.annotations_of(target["id"])) or
                                               round(typical * target["height"] * target["width"])))
        count = max(1, min(count, remaining[cid]))
        start = time.perf_counter()
        background = dataset.read_image(target)
        if background.shape[:2] != (target["height"], target["width"]):
            raise DatasetError(f"{dataset.image_file(target)}: image is {background.shape[1]}×{background.shape[0]}, "
                               f"its record (id {target['id']}) says {target['width']}×{target['height']}")
        result = paste_onto(background, dataset.instances(target), makers[cid], count, rng, policy.margin, part)
        if cid in finishers and result.added:
            result = finishers[cid](background, result, attempt - 1)
        if result.added == 0:
            failures += 1
            continue
        source = source_of[cid]
        name = f"{SYNTHETIC_PREFIX}{next_image:09d}.{'jpg' if policy.format == 'jpeg' else 'png'}"
        if name in real_names:
            raise DatasetError(f"{dataset.path}: a real image is already named {name}; cannot name new images")
        sample = Sample(next_image - 1, policy.seed, result.image, result.instances,
                        Provenance(f"rare:{source}", synthetic=True, model=models.get(cid),
                                   background=target["file_name"], stages=(source,)))
        write_image(folder / name, result.image, policy.format)
        record = sample_records(sample, name)
        image = {**record["image"], "source": source, "attempt": attempt - 1, "pasted_on": target["id"]}
        image.pop("config_hash", None)
        new_images.append(image)
        for ann in record["annotations"]:
            new_anns.append({"id": next_ann, **ann})
            next_ann += 1
        next_image += 1
        remaining[cid] -= result.added
        added[cid] += result.added
        seconds[source] = seconds.get(source, 0.0) + time.perf_counter() - start
        bar.update(result.added)
        if remaining[cid] <= 0:
            del remaining[cid]
    bar.close()
    return new_images, new_anns, added, seconds


def density_count(own: int) -> tuple[int, int]:
    """Instances pasted on an image holding `own`: a quarter to a half as many again (at least 1),
    so a sparse image gets one or two and a crowded one keeps its look."""
    return (max(1, own // 4), max(1, (own + 1) // 2))


def _typical_density(dataset: CocoDataset, image_ids: list[int]) -> float:
    """Median instances per pixel of the annotated training images (for pasting onto clean ones)."""
    wanted = set(image_ids)
    values = [len(anns) / (im["height"] * im["width"]) for im in dataset.images
              if im["id"] in wanted and (anns := dataset.annotations_of(im["id"]))]
    return float(np.median(values)) if values else 0.0


def _write_files(work, dataset, policy, eval_ids, new_images, new_anns, summary) -> None:
    info = {**dataset.info, "rare_augmentation": {"seed": policy.seed, "policy": policy.model_dump(mode="json"),
                                                  "source_annotations": str(dataset.path)}}
    real_images = dataset.images
    real_anns = dataset.annotations
    write_coco(work / "annotations.json", info, dataset.categories, real_images + new_images, real_anns + new_anns)
    train_images = [im for im in real_images if im["id"] not in eval_ids]
    train_anns = [a for a in real_anns if a["image_id"] not in eval_ids]
    write_coco(work / "annotations_train.json", {**info, "split": "train"}, dataset.categories,
               train_images + new_images, train_anns + new_anns)
    if policy.has_eval:  # with eval: none there is no pure-real split to write (card and report say so)
        write_coco(work / "annotations_eval.json", {**dataset.info, "split": "eval", "real_only": True},
                   dataset.categories, [im for im in real_images if im["id"] in eval_ids],
                   [a for a in real_anns if a["image_id"] in eval_ids])
    write_json(work / "rare_report.json", summary.to_json(), indent=2)
    write_atomic(work / "dataset_card.md", render_card(rare_facts(dataset, policy, summary)))


def rare_facts(dataset, policy, summary) -> CardFacts:
    """The card facts of an augment-rare output (rendered by the one card renderer)."""
    cap = lambda p: "-" if p.cap >= 10**9 else p.cap  # noqa: E731
    if summary.has_eval:
        evaluate = ("evaluate on `annotations_eval.json` (real images only, never augmented, pasted from or onto, "
                    "nor used to train a generator)")
        held = f"{summary.train_images} train, {summary.eval_images} eval (never augmented)"
    else:
        evaluate = ("**there is no pure-real eval split** (`eval: none`): every real image was used for "
                    "training and as a paste target, so evaluate on real images kept apart elsewhere")
        held = f"{summary.train_images} train, no pure-real eval split"
    return CardFacts(
        title="rare-class augmentation",
        about=[f"Source: `{dataset.path}`. Train on `annotations_train.json`; {evaluate}. "
               "`annotations.json` holds every real record unchanged plus the new ones.",
               "New images are training images with instances of one class pasted on; their own instances are "
               "kept and flagged `source: real` inside the synthetic image.",
               *([summary.policy_line[0].upper() + summary.policy_line[1:] + "."] if summary.policy_line else [])],
        provenance=[["source annotations", f"`{dataset.path}`"], ["policy seed", f"`{policy.seed}`"],
                    ["real images", held], ["new images", summary.new_images]],
        count_headers=["class", "real train", "real eval", "target", "cap", "synthetic added", "source"],
        counts=[[p.name, p.real, summary.eval_counts.get(p.category_id, 0), p.target, cap(p),
                 summary.added.get(p.category_id, 0), p.source or "-"] for p in summary.plans],
        config_yaml=yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
