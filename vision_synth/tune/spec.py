"""The tune spec: which base makes the candidates, the real train/val (and optional test) sets, the
search space over the base's keys and the utility training, and the budget.

```yaml
base: {kind: augment, config: augment_base.yaml}    # augment spec | rare policy | generate config
train: {coco: real/train.json, images: real/images}  # the real-only arm; what augment/rare augment
val: {coco: real/val.json, images: real/images}      # scores every trial; never feeds generation
space:
  copy_paste.count: {choices: [[1, 2], [1, 4], [4, 12]]}
  copy_paste.scale: {range: [0.5, 1.5]}
  utility.real_share: {choices: [0.25, 0.5, 0.75]}   # the utility training's own keys
budget: {trials: 12, seeds: 2, max_seeds: 4, eta: 3, confirm_seeds: 6, seed: 0}
utility: {steps: 200}                                # detector_spec.TrainConfig keys
```

Paths are relative to the spec file. A space key is a dotted key path of the base file, written as
it would be there (`scene.defects[0].width`; values, paths included, mean what they mean in the
base file), or `utility.KEY` (a TrainConfig key of the utility check), or `source` (augment, rare:
which COCO set the base is applied to, default `train`; choices of `{coco, images}`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, StrictInt, field_validator, model_validator

from vision_synth.errors import ConfigError
from vision_synth.spec import Spec, key_path_parts, read_yaml, validate_spec

BaseKind = Literal["augment", "rare", "generate"]
UTILITY_PREFIX = "utility."
SOURCE_KEY = "source"
# TrainConfig keys the search may not change: they are the measurement's, not a setting's
FIXED_TRAIN_KEYS = ("seed", "device", "weights")


class DataSpec(Spec):
    """A COCO set: its annotations and image folder (default: the json's folder)."""

    coco: str
    images: str | None = None


class BaseSpec(Spec):
    """What makes a candidate: `vision-synth augment --spec CONFIG` (of the source set), `augment-rare
    --config CONFIG`, or `generate CONFIG`. `seed` and `format` are augment's `--seed` and
    `--format` (rare policies and dataset configs have their own keys for both)."""

    kind: BaseKind
    config: str
    source: DataSpec | None = Field(None, description="augment, rare: the set the base is applied to "
                                                      "(default: train)")
    seed: int | None = Field(None, ge=0)
    format: Literal["png", "jpeg"] | None = None

    @model_validator(mode="after")
    def _augment_only(self) -> BaseSpec:
        if self.kind != "augment":
            for key in ("seed", "format"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: applies to kind augment only (a {self.kind} config has its own)")
        if self.kind == "generate" and self.source is not None:
            raise ValueError("source: applies to kinds augment and rare (generate makes its images itself)")
        return self


class Dimension(Spec):
    """One searched key: `choices` (any values, in order), or `range: [low, high]` (whole numbers
    when both are whole; `log: true` spaces it geometrically)."""

    choices: list[Any] | None = Field(None, min_length=1)
    range: tuple[StrictInt, StrictInt] | tuple[float, float] | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        if (self.choices is None) == (self.range is None):
            raise ValueError("give exactly one of choices: [...] or range: [low, high]")
        if self.range is not None:
            low, high = self.range
            if not low < high:
                raise ValueError("range: expected [low, high] with low < high")
            if self.log and low <= 0:
                raise ValueError("range: log spacing needs low > 0")
        elif self.log:
            raise ValueError("log: applies to a range")
        return self

    @property
    def integer(self) -> bool:
        return self.range is not None and all(isinstance(v, int) for v in self.range)


class BudgetSpec(Spec):
    """`trials` settings drawn space-filling (Latin hypercube) from `seed`, each measured with `seeds`
    paired seeds; then successive halving: the best 1/`eta` of a rung go on with twice the seeds,
    up to `max_seeds`. The top trial is measured again on `confirm_seeds` fresh seeds (never used by
    the search), and its verdict comes from those seeds alone (the utility check's interval and sign
    test: at least `decisive_seeds()`, 6, can be decisive)."""

    trials: int = Field(12, ge=1)
    seeds: int = Field(2, ge=2, description="seeds of every trial in the first rung")
    max_seeds: int = Field(4, ge=2, description="seeds of the last rung")
    eta: int = Field(3, ge=2, description="a rung keeps its best 1/eta")
    confirm_seeds: int = Field(6, ge=2)
    seed: int = Field(0, ge=0, description="the space-filling design")

    @model_validator(mode="after")
    def _seeds_grow(self) -> BudgetSpec:
        if self.max_seeds < self.seeds:
            raise ValueError(f"max_seeds: expected at least seeds ({self.seeds})")
        fewest = decisive_seeds()
        if self.confirm_seeds < fewest:
            raise ValueError(f"confirm_seeds: expected at least {fewest}: with fewer paired seeds the utility "
                             "verdict's sign test can never be decisive, so no setting could be found to help")
        return self


def decisive_seeds() -> int:
    """The fewest paired seeds whose utility verdict can be decisive (every pair one way passes the
    sign test of vision_synth/quality/utility.py)."""
    from vision_synth.quality.utility import SIGN_TEST_ALPHA, sign_test_p

    n = 2
    while sign_test_p([0.0] * n, [1.0] * n) >= SIGN_TEST_ALPHA:
        n += 1
    return n


class TuneSpec(Spec):
    base: BaseSpec
    train: DataSpec
    val: DataSpec
    test: DataSpec | None = Field(None, description="real images the confirmation run is scored on "
                                                    "instead of val (never seen by the search)")
    space: dict[str, Dimension] = Field(min_length=1)
    budget: BudgetSpec = BudgetSpec()
    utility: Any = Field(default_factory=dict, validate_default=True)  # TrainConfig keys
    threads: int = Field(1, ge=1, description="torch CPU threads of each process: results depend on it")

    _base_dir: Path = PrivateAttr(default=Path("."))
    _source: str = PrivateAttr(default="spec")

    @field_validator("utility", mode="before")
    @classmethod
    def _train_config(cls, value: Any) -> Any:
        from vision_synth.quality.spec import train_config

        return train_config(value)

    @field_validator("space")
    @classmethod
    def _keys(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        from vision_synth.detector_spec import TrainConfig

        for key, dim in space.items():
            try:
                key_path_parts(key)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            if key.startswith(UTILITY_PREFIX):
                name = key[len(UTILITY_PREFIX):]
                if name not in TrainConfig.model_fields or name in FIXED_TRAIN_KEYS:
                    allowed = ", ".join(k for k in TrainConfig.model_fields if k not in FIXED_TRAIN_KEYS)
                    raise ValueError(f"{key}: not a key of the utility training (one of {allowed})")
            if key == SOURCE_KEY:
                if dim.choices is None:
                    raise ValueError(f"{key}: expected choices of {{coco, images}} sets")
                for i, choice in enumerate(dim.choices):
                    validate_spec(DataSpec, choice, f"space.{key}.choices[{i}]")
        return space

    @model_validator(mode="after")
    def _source_kind(self) -> TuneSpec:
        if SOURCE_KEY in self.space and self.base.kind == "generate":
            raise ValueError("space.source: applies to kinds augment and rare")
        return self

    # ------------------------------------------------------------------------------ paths
    def resolve(self, path: str | None) -> Path | None:
        """A path written in the spec, relative to its file."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def data(self, ref: DataSpec | dict) -> tuple[Path, Path]:
        """(annotations, images) of a set named in the spec."""
        ref = ref if isinstance(ref, DataSpec) else DataSpec.model_validate(ref)
        coco = self.resolve(ref.coco)
        return coco, self.resolve(ref.images) if ref.images is not None else coco.parent

    @property
    def base_config(self) -> Path:
        return self.resolve(self.base.config)

    @property
    def source_file(self) -> str:
        return self._source

    def digest(self) -> str:
        """What the results depend on: this spec as validated, and the bytes of the base file (a
        changed base is another search)."""
        blob = json.dumps({"spec": self.model_dump(mode="json"), "base_dir": str(self._base_dir),
                           "base": hashlib.sha256(self.base_config.read_bytes()).hexdigest()},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_tune_spec(path: str | Path) -> TuneSpec:
    """A TuneSpec from YAML; errors name the file and key path. The base file and the data sets must
    exist (their own contents are checked when the candidates are made, before any training)."""
    path = Path(path)
    data = read_yaml(path, "tune spec")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of tune keys (base, train, val, space, budget)")
    spec = validate_spec(TuneSpec, data, str(path))
    spec._base_dir = path.resolve().parent
    spec._source = str(path)
    if not spec.base_config.is_file():
        raise ConfigError(f"{path}: base.config: file {spec.base_config} not found")
    sets = [("train", spec.train), ("val", spec.val), ("test", spec.test), ("base.source", spec.base.source)]
    sets += [(f"space.source.choices[{i}]", c) for i, c in enumerate(spec.space[SOURCE_KEY].choices)] \
        if SOURCE_KEY in spec.space else []
    for key, ref in sets:
        if ref is None:
            continue
        coco, images = spec.data(ref)
        if not coco.is_file():
            raise ConfigError(f"{path}: {key}.coco: file {coco} not found")
        if not images.is_dir():
            raise ConfigError(f"{path}: {key}.images: folder {images} not found")
    return spec
