"""The `quality:` config section: which checks run, on what reference, and the gate's thresholds.

Paths (reference, weights) are relative to the file the section was read from (`_base_dir`, set by
the loader) and fall back to the working directory. A threshold left at None is not checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from vision_synth.errors import ConfigError
from vision_synth.spec import PathText, Spec, key_path_value, read_yaml, validate_spec, with_key_paths

WEIGHTS_ENV = "VISION_SYNTH_FID_WEIGHTS"
FeatureKind = Literal["inception", "proxy", "off"]
# the utility check's default detector: vision_synth.detector_spec.TrainConfig's defaults
# (fcos_compact, 200 steps of 4 crops of 192 px: about 60 s an arm and seed on 2 CPU cores)


class FidelitySpec(Spec):
    """Fidelity on Inception-v3 pool features: FID, KID, precision/recall, per-class FID on crops.

    `features: inception` needs the standard FID weights as a local file (`weights`, else the
    VISION_SYNTH_FID_WEIGHTS environment variable); `proxy` uses a seeded random-init Inception-v3
    and reports FID-proxy/KID-proxy, which are not FID and not comparable with published values;
    `off` computes no features (no fidelity, no feature duplicates, no memorisation check).
    The network runs at 299×299: about 5 images/s on 2 CPU cores, so the default caps (2000 images a
    side, 200 crops a class) take tens of minutes there and seconds on a GPU.
    """

    features: Annotated[FeatureKind, BeforeValidator(_off)] = "inception"
    weights: PathText | None = None
    layer: Literal["64", "192", "768", "2048"] = "2048"
    # at most this many images of each side go into the features (a seeded sample)
    max_images: int = Field(2000, ge=2)
    per_class: bool = True
    max_crops_per_class: int = Field(200, ge=2)
    min_crops_per_class: int = Field(10, ge=2)
    crop_size: int = Field(128, ge=16, description="instance crops are resized to this square first")
    kid_subset_size: int = Field(1000, ge=2)
    kid_subsets: int = Field(100, ge=1)
    pr_k: int = Field(3, ge=1, description="k of the k-NN manifolds of precision/recall")
    pr_min_samples: int = Field(50, ge=2, description="precision/recall only with this many images a side")
    # with fewer reference images than this, the statistics are computed on tiles of both sides
    # (FID needs many samples; one few-shot reference image gives dozens of tiles)
    min_reference_images: int = Field(10, ge=2)
    tiles_per_side: int = Field(4, ge=2, le=16, description="tile side = the reference's shorter side / this; "
                                                            "tiles overlap by half")
    batch_size: int = Field(32, ge=1)
    device: str = "auto"
    seed: int = Field(0, ge=0, description="image/crop/tile sampling, KID subsets and the proxy's weights")


def _off(value: Any) -> Any:
    """YAML reads an unquoted `off` as false: the `off` it was written as."""
    return "off" if value is False else value


def _fidelity_shorthand(value: Any) -> Any:
    value = _off(value)
    return {"features": value} if isinstance(value, str) else value


class DuplicatesSpec(Spec):
    """Near-duplicates within the synthetic images and against the reference: DCT perceptual hash
    (Hamming distance over 64 bits) and, with Inception features (not the proxy's), cosine of
    features centred on the reference mean (None: off). `remove` rewrites the annotations without
    the later image of each pair and without synthetic images that copy a reference image."""

    action: Literal["report", "remove"] = "report"
    phash_max_distance: int = Field(4, ge=0, le=64)
    feature_min_cosine: float | None = Field(0.98, gt=0, le=1)
    against_reference: bool = True


class LabelsSpec(Spec):
    min_area: int = Field(4, ge=1, description="fewest mask pixels of an instance")
    min_side: int = Field(2, ge=1, description="shortest box side in pixels")
    bins: int = Field(20, ge=2, description="histogram bins of the box-size and position figures")


class UtilitySpec(Spec):
    """Train on real train (a) and on real train + synthetic (b) with one budget and paired seeds,
    score both on held-out real images (vision_synth/quality/utility.py). The held-out split is
    `reference_val`, else a seeded `val_fraction` of the reference. `require`: the verdict the
    gate asks for (`helps`; `no-evidence` refuses only data that hurts; None: reported only).
    While the verdict is open but leaning, seeds are added up to `max_seeds`."""

    enabled: bool = False
    # vision_synth.detector_spec.TrainConfig keys; validated by it
    train: Any = Field(default_factory=dict, validate_default=True)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=2)
    max_seeds: int = Field(9, ge=2)
    require: Literal["helps", "no-evidence"] | None = None
    val_fraction: float = Field(0.3, gt=0, lt=1)
    split_seed: int = Field(0, ge=0)
    reference_val: PathText | None = None
    reference_val_images: PathText | None = None

    @field_validator("train", mode="before")
    @classmethod
    def _train_config(cls, value: Any) -> Any:
        return train_config(value)


def train_config(value: Any):
    """A TrainConfig from a spec's mapping of detector training keys (None: the defaults)."""
    from vision_synth.detector_spec import TrainConfig

    if isinstance(value, TrainConfig):
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of detector training keys (model, steps, crop_size, ...)")
    return TrainConfig.model_validate(value)


class MemorisationSpec(Spec):
    """Distance to closest record (DCR) of each synthetic image to the images a generator was trained
    on (`train_reference`, default the reference set). `auto`: on when the dataset's provenance names
    a learned generator (an image record whose `generator` is `diffusion` or `diffusion:MODE`) or a
    DCR threshold is set."""

    enabled: bool | Literal["auto"] = "auto"
    train_reference: PathText | None = None
    train_reference_images: PathText | None = None
    close_quantile: float = Field(0.05, gt=0, lt=1)
    copy_tolerance: float = Field(1e-3, ge=0, description="normalised DCR at or below which a sample is a copy")


class GateSpec(Spec):
    """Thresholds; any one broken, or not measured, leaves the dataset unpublished (the table of gates:
    vision_synth/quality/gate.py; `utility.require` is the utility verdict's gate)."""

    fid_max: float | None = Field(None, ge=0)
    kid_max: float | None = None
    fid_proxy_max: float | None = Field(None, ge=0)
    kid_proxy_max: float | None = None
    class_fid_max: float | None = Field(None, ge=0, description="every class's crop FID (or FID-proxy)")
    min_precision: float | None = Field(None, ge=0, le=1)
    min_recall: float | None = Field(None, ge=0, le=1)
    min_utility_delta_ap: float | None = None
    # share of the images left in the dataset that are flagged duplicates: with duplicates.action:
    # remove it is 0 after removal (quality.json reports how many were found and removed)
    max_duplicate_fraction: float | None = Field(None, ge=0, le=1)
    min_dcr: float | None = Field(None, ge=0, description="smallest normalised DCR allowed")
    max_dcr_close_fraction: float | None = Field(None, ge=0, le=1)
    max_label_issues: int | None = Field(0, ge=0)
    max_box_size_ks: float | None = Field(None, ge=0, le=1)


class QualitySpec(Spec):
    reference: PathText | None = None
    reference_images: PathText | None = None
    fidelity: Annotated[FidelitySpec, BeforeValidator(_fidelity_shorthand)] = FidelitySpec()
    duplicates: DuplicatesSpec = DuplicatesSpec()
    labels: LabelsSpec = LabelsSpec()
    utility: UtilitySpec = UtilitySpec()
    memorisation: MemorisationSpec = MemorisationSpec()
    gate: GateSpec = GateSpec()
    sample_grid: int = Field(16, ge=0, le=64, description="images in the report's sample grid")

    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _thresholds_measured(self) -> QualitySpec:
        """A threshold on a metric that this section does not compute is a mistake; say which (the
        table of gates in vision_synth/quality/gate.py says what each needs)."""
        from vision_synth.quality.gate import spec_problems

        problems = spec_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        if self.memorisation.enabled is True and self.fidelity.features == "off":
            raise ValueError("memorisation needs features: set fidelity.features to inception or proxy")
        return self

    def resolve(self, path: str | Path | None) -> Path | None:
        """A path written in the section, relative to its file."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def with_base_dir(self, base_dir: Path) -> QualitySpec:
        self._base_dir = Path(base_dir)
        return self


def load_quality_spec(path: str | Path | None, **overrides: Any) -> QualitySpec:
    """A QualitySpec from a YAML file holding either the section's keys or a dataset config with a
    `quality:` key; `overrides` are dotted keys (`"utility.enabled": True`) from command-line flags,
    None meaning "not given". Without a file, the defaults and the overrides."""
    data: dict[str, Any] = {}
    source, base = "command line", Path(".")
    if path is not None:
        path = Path(path)
        source, base = str(path), path.resolve().parent
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of quality keys (reference, fidelity, gate, ...)")
        if "quality" in data:
            data = data["quality"] or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: quality: expected a mapping")
    edits = {key: value for key, value in overrides.items() if value is not None}
    try:
        data = with_key_paths(_nested(data), edits)
    except ValueError:  # e.g. `utility: 5` in the file, --steps on the command line
        for key in edits:
            *parents, _ = key.split(".")
            for depth in range(1, len(parents) + 1):
                node = key_path_value(_nested(data), ".".join(parents[:depth]))
                if node is not None and not isinstance(node, dict):
                    raise ConfigError(f"{source}: {'.'.join(parents[:depth])}: expected a mapping (a command-line "
                                      f"flag sets {key} in it)") from None
        raise
    return validate_spec(QualitySpec, data, source).with_base_dir(base)


def _nested(data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of plain dicts, with `fidelity: proxy` expanded so overrides can go into it."""
    out = {k: _nested(v) if isinstance(v, dict) else v for k, v in data.items()}
    if isinstance(_off(out.get("fidelity")), str):
        out["fidelity"] = {"features": _off(out["fidelity"])}
    return out
