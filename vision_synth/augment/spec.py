"""Config models of the augmentation stage: the `augment:` section of a dataset config, and the
same keys as a file of their own for `vision-synth augment --spec`.

The pipeline is written in albumentations' own serialization format (what `A.to_dict` returns or
`A.save` writes), inline or as a path, so any albumentations transform can be named as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vision_synth.errors import ConfigError
from vision_synth.spec import CountRange, ScaleRange, Spec, read_yaml, validate_spec, with_key_paths


class CopyPasteSpec(Spec):
    """Simple Copy-Paste (Ghiasi et al. 2021): instances of other samples pasted over this one.

    Pasted instances hide what lies beneath: target instances lose the covered pixels and are
    dropped when left below `min_visible_area` pixels or `min_visible_fraction` of their area.
    """

    probability: float = Field(1.0, ge=0, le=1, description="chance that a copy gets pasted instances")
    sources: int = Field(1, ge=1, description="other samples to take instances from")
    count: CountRange = Field((1, 3), description="instances pasted per copy, [min, max]")
    scale: ScaleRange = Field((0.75, 1.25), description="size factor of a pasted instance (1 = as in its source)")
    flip: bool = Field(True, description="mirror pasted instances at random")
    # category ids that may be pasted (default: all) and their relative weights (default 1 each):
    # weights > 1 paste a rare class more often
    classes: list[int] | None = None
    class_weights: dict[int, float] = Field(default_factory=dict)
    blend: Literal["hard", "feather", "poisson"] = "hard"
    feather: float = Field(1.0, gt=0, le=20, description="Gaussian sigma in pixels for blend: feather")
    # placement among pasted instances, as in the scene's placement rules
    max_overlap: float = Field(0.5, ge=0, le=1)
    min_visible_area: int = Field(16, ge=1)
    min_visible_fraction: float = Field(0.25, ge=0, le=1)
    max_tries: int = Field(20, ge=1)

    @field_validator("class_weights")
    @classmethod
    def _weights_not_negative(cls, weights: dict[int, float]) -> dict[int, float]:
        bad = {k: v for k, v in weights.items() if v < 0}
        if bad:
            raise ValueError(f"weights must be >= 0, got {bad}")
        return weights


class AugmentSpec(Spec):
    """`copies` augmented variants of every sample (plus the original with `keep_originals`).

    Output index of sample i: i * (copies + keep_originals) + slot, where slot 0 is the original
    (when kept) and copy c takes slot c + keep_originals; copy c of sample i is drawn from
    rng_for(seed, i, c) alone. Instances left with fewer than `min_area` pixels, or under
    `min_visible_fraction` of their pixel count before the transform (scaled by the change in image
    size), are dropped together with their masks.
    """

    pipeline: dict[str, Any] | str | None = Field(
        None, description="albumentations pipeline: the dict of A.to_dict, or a YAML/JSON file saved with A.save")
    copies: int = Field(1, ge=1, le=1000)
    keep_originals: bool = True
    min_area: int = Field(16, ge=1, description="fewest visible pixels an augmented instance keeps")
    min_visible_fraction: float = Field(0.0, ge=0, le=1)
    drop_empty: bool = Field(False, description="write no image that is left without instances")
    copy_paste: CopyPasteSpec | None = None

    @field_validator("pipeline")
    @classmethod
    def _pipeline_builds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            from vision_synth.augment.albu import build_pipeline

            build_pipeline(value, "augment.pipeline")  # ValueError names the transform's key path
        elif isinstance(value, str) and not value.strip():
            raise ValueError("expected a pipeline dict or the path of a pipeline file")
        return value

    @model_validator(mode="after")
    def _does_something(self) -> AugmentSpec:
        if self.pipeline is None and self.copy_paste is None:
            raise ValueError("augment needs a pipeline, copy_paste, or both")
        return self

    @property
    def slots(self) -> int:
        """Output images per input sample."""
        return self.copies + int(self.keep_originals)

    def load_pipeline(self, base_dir: Path | None = None):
        """The albumentations pipeline (None without one); a relative path is read from `base_dir`
        (the folder of the config that names it). Raises ConfigError naming the file."""
        if self.pipeline is None:
            return None
        from vision_synth.augment.albu import load_pipeline

        return load_pipeline(self.pipeline, base_dir)


def load_augment_spec(path: str | Path | None, defaults: dict[str, Any] | None = None,
                      edits: dict[str, Any] | None = None, **overrides: Any) -> AugmentSpec:
    """An AugmentSpec from a YAML file of its own (the keys of a dataset config's `augment:`), or from
    `defaults` and `overrides` alone when `path` is None. `defaults` fill keys the file leaves out;
    `edits` set dotted key paths of the file's data as if written there (`{"copy_paste.count": [1, 4]}`,
    what `vision-synth tune` searches); non-None `overrides` (command-line flags) replace keys. A
    pipeline path in the file (or an edit) is relative to the file; one given as an override, to the
    working directory."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of augment keys (pipeline, copies, ...)")
        if edits:
            try:
                data = with_key_paths(data, edits)
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        if isinstance(data.get("pipeline"), str):
            pipeline = Path(data["pipeline"]).expanduser()
            data["pipeline"] = str(pipeline if pipeline.is_absolute() else path.parent / pipeline)
    data = {**(defaults or {}), **data, **{k: v for k, v in overrides.items() if v is not None}}
    return validate_spec(AugmentSpec, data, source)
