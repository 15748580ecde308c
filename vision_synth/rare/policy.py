"""The rare-class policy: which classes get new instances, how many, and from which source.

A class of the (training part of the) dataset with `n` real instances is brought up to its target
(`target_per_class`, or `rare_below` for classes under it; `rare_below: median` = the median class
count), but never past the cap on its synthetic share: added `s` keeps
`s / (n + s) <= max_synthetic_fraction`. Both are overridable per class. Without a policy file,
augment-rare uses the default policy: classes below the median class count (or below `--target N`)
raised to it with copy-paste, capped at 0.5.

Paste settings left unset (`paste.scale`, `paste.rotation`, `paste.color_jitter`, `per_image`)
follow the class's real instances (rare/stats.py) and each target image's own instance count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pydantic import Field, model_validator

from vision_synth.diffusion.spec import DiffusionSpec
from vision_synth.errors import ConfigError
from vision_synth.scene.defects import DefectSpec
from vision_synth.spec import (BlendSpec, ColorJitter, CountRange, FloatRange, PathText, ScaleRange, Spec, read_yaml,
                               validate_spec)

Source = Literal["copy-paste", "procedural", "learned", "inpaint"]


NO_EVAL = "none"


class EvalSpec(Spec):
    """The pure-real evaluation split: a COCO file of it, or drawn stratified by class with `ratio`.
    `eval: none` (the policy key) goes without one; card and report then say so."""

    coco: PathText | None = None
    ratio: float | None = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_way(self) -> EvalSpec:
        if self.coco is None and self.ratio is None:
            raise ValueError("give eval.coco or eval.ratio")
        return self


class PasteSpec(Spec):
    """How a crop is pasted (the attribute names of the compositor's ObjectSpec, which `object_layer`
    reads). `scale`: longest side as a fraction of the image's shorter side; none = the range seen
    in the class's real instances."""

    scale: ScaleRange | None = None
    rotation: FloatRange | None = Field(None, description="degrees; none = any turn for round or randomly "
                                        "oriented instances, the real spread for aligned ones")
    flip: bool = True
    color_jitter: ColorJitter | None = Field(None, description="none = brightness and contrast over the real "
                                             "instances' spread; saturation untouched on greyscale data")
    blend: Literal["hard", "feather", "poisson"] | None = None


class ClassPolicy(Spec):
    source: Source = "copy-paste"
    target: int | None = Field(None, ge=0)
    max_synthetic_fraction: float | None = Field(None, ge=0, le=1)
    defect: DefectSpec | None = Field(None, description="procedural: the compositor defect to draw")
    model: PathText | None = Field(None, description="learned: folder written by `vision-synth defects train`")
    inpaint: DiffusionSpec | None = Field(None, description="inpaint: the diffusion section (mode inpaint-insert, "
                                                           "model, prompts with one for this class)")
    dcr_quantile: float = Field(0.05, ge=0, le=1, description="learned: reject crops nearer a training crop "
                                                             "than this quantile of training NN distances")
    sample_steps: int = Field(50, ge=1, le=1000, description="learned: denoising steps per crop")

    @model_validator(mode="after")
    def _source_has_its_section(self) -> ClassPolicy:
        if self.source == "procedural" and self.defect is None:
            raise ValueError("source procedural needs a 'defect' section (a compositor defect, e.g. {kind: crack})")
        if self.source == "learned" and self.model is None:
            raise ValueError("source learned needs 'model' (a folder from `vision-synth defects train`)")
        if self.source == "inpaint" and self.inpaint is None:
            raise ValueError("source inpaint needs an 'inpaint' section (mode: inpaint-insert, model, prompts)")
        return self


class RarePolicy(Spec):
    seed: int = Field(0, ge=0)
    target_per_class: int | None = Field(None, ge=0)
    rare_below: int | Literal["median"] | None = Field(None, description="raise classes with fewer real "
                                                       "instances to this count (median: the median class count)")
    max_synthetic_fraction: float = Field(0.5, ge=0, le=1)
    eval: EvalSpec | Literal["none"] = EvalSpec()
    classes: dict[str, ClassPolicy] = Field(default_factory=dict)
    paste: PasteSpec = PasteSpec()
    blend: BlendSpec = BlendSpec(mode="feather", feather=1.0)
    per_image: CountRange | None = Field(None, description="new instances per new image; none = a quarter to a "
                                         "half of the target image's own instance count (at least 1)")
    targets: Literal["clean-first", "any"] = Field("clean-first", description="paste onto images without "
                                                   "annotations while there are any, else onto any train image")
    region: PathText | None = Field(None, description="part mask image (white = where defects may go), resized to each image")
    margin: int = Field(2, ge=0, description="pixels kept free around existing instances")
    format: Literal["png", "jpeg"] = "png"
    max_attempts: int = Field(4, ge=1, description="new images tried per wanted image before giving up")

    @model_validator(mode="after")
    def _rare_below_positive(self) -> RarePolicy:
        if isinstance(self.rare_below, int) and self.rare_below < 1:
            raise ValueError("rare_below: must be at least 1 (or median)")
        return self

    @property
    def has_eval(self) -> bool:
        return self.eval != NO_EVAL


DEFAULT_POLICY = {"rare_below": "median"}  # without --config: classes below the median count raised to it


def load_policy(path: str | Path | None, seed: int | None = None, target: int | None = None,
                eval_coco: str | None = None) -> RarePolicy:
    """The policy of a YAML file (None: the default policy). Command-line overrides: `seed`;
    `target` (--target N: classes below N raised to N, in place of the file's targets); `eval_coco`
    (--eval: a COCO file of the pure-real eval split, or "none")."""
    data = dict(DEFAULT_POLICY) if path is None else read_yaml(Path(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of policy keys")
    if seed is not None:
        data = {**data, "seed": seed}
    if target is not None:
        data = {**data, "rare_below": target, "target_per_class": None}
    if eval_coco is not None:
        data = {**data, "eval": NO_EVAL if eval_coco == NO_EVAL else {"coco": eval_coco, "ratio": None}}
    classes = data.get("classes")
    if isinstance(classes, dict):  # a procedural defect is labelled as its class; `category` may be left out
        data = {**data, "classes": {
            name: {**per, "defect": {"category": name, **per["defect"]}}
            if isinstance(per, dict) and isinstance(per.get("defect"), dict) else per
            for name, per in classes.items()}}
    return validate_spec(RarePolicy, data, str(path or "policy"))


@dataclass(frozen=True)
class ClassPlan:
    name: str
    category_id: int
    real: int  # real instances in the training part
    target: int
    cap: int  # most synthetic instances the share cap allows
    add: int
    source: Source | None


def plan_counts(policy: RarePolicy, categories: list[dict], real_counts: dict[int, int],
                source: str = "policy") -> list[ClassPlan]:
    """How many instances each class gets; errors name a policy class the dataset does not have."""
    names = {c["name"]: c["id"] for c in categories}
    for name in policy.classes:
        if name not in names:
            raise ConfigError(f"{source}: classes.{name}: no category named {name!r} in the dataset "
                              f"(has: {', '.join(names)})")
    below = rare_threshold(policy, categories, real_counts, source)
    plans = []
    for cat in categories:
        name, cid = cat["name"], cat["id"]
        per = policy.classes.get(name)
        n = int(real_counts.get(cid, 0))
        if per is not None and per.target is not None:
            target = per.target
        elif policy.target_per_class is not None:
            target = policy.target_per_class
        elif below is not None and n < below:
            target = below
        else:
            target = n
        fraction = per.max_synthetic_fraction if per is not None and per.max_synthetic_fraction is not None \
            else policy.max_synthetic_fraction
        cap = 10**9 if fraction >= 1 else math.floor(fraction * n / (1 - fraction) + 1e-9)
        add = max(0, min(target - n, cap))
        plans.append(ClassPlan(name, cid, n, target, cap, add, (per.source if per else "copy-paste") if add else None))
    return plans


def rare_threshold(policy: RarePolicy, categories: list[dict], real_counts: dict[int, int],
                   source: str = "policy") -> int | None:
    """The count classes below which are raised to it: `rare_below`, or the median class count."""
    if policy.rare_below != "median":
        return policy.rare_below
    if len(categories) == 1:
        only = categories[0]
        n = int(real_counts.get(only["id"], 0))
        raise ConfigError(f"{source}: the dataset has one class ({only['name']!r}, {n} real instances): the default "
                          f"policy raises classes below the median class count, so nothing is below it; pass "
                          f"--target N to raise it to N instances (e.g. --target {2 * max(n, 1)})")
    return int(math.ceil(float(np.median([int(real_counts.get(c["id"], 0)) for c in categories]))))
