"""The one adapter to albumentations (pinned 2.0.8): load pipelines written in its own serialization
format (`A.to_dict` / `A.save`), check that they can keep labels exact, and run them seeded.

No other module imports albumentations. A pipeline moves the image and a stack of mask planes in one
call, so every geometric transform moves pixels and labels with the same parameters; boxes of a
dataset are never given to albumentations (they are derived from the transformed masks afterwards).
The one exception is `TrainingCrops`, the detector's training views, whose boxes live only for one
training step and are never written.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision_synth.errors import ConfigError, VisionSynthError
from vision_synth.spec import read_yaml

# albumentations asks PyPI for a newer version at import time unless told not to; keep runs offline
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.serialization import SERIALIZABLE_REGISTRY, shorten_class_name  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform, ImageOnlyTransform  # noqa: E402

ALBUMENTATIONS_VERSION = "2.0.8"
if A.__version__ != ALBUMENTATIONS_VERSION:
    raise VisionSynthError(f"albumentations {A.__version__} is installed; vision_synth needs "
                           f"{ALBUMENTATIONS_VERSION} (pip install albumentations=={ALBUMENTATIONS_VERSION})")

NEAREST = 0  # cv2.INTER_NEAREST
# Dual transforms that compute with mask values (dilate them, treat them as class ids) instead of
# only resampling them: instances sharing a label plane would mix, so each gets its own 0/1 plane.
VALUE_TRANSFORMS = frozenset({"Morphological", "MaskDropout", "ConstrainedCoarseDropout"})


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A loaded albumentations pipeline.

    `geometric`: some transform moves pixels (masks must follow). `shared_planes`: every mask-moving
    transform resamples masks nearest-neighbour without computing on their values, so instances that
    do not overlap may share one label plane (one warp for many instances).
    """

    compose: Any  # albumentations.Compose
    source: str  # the file it came from, or the config key of an inline dict
    geometric: bool
    shared_planes: bool

    def to_dict(self) -> dict[str, Any]:
        """The pipeline in albumentations' serialization format (what `A.save` writes)."""
        return _plain(A.to_dict(self.compose))

    def apply(self, image: np.ndarray, planes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Transform `image` (H×W×3 uint8) and `planes` (P×H×W uint8/uint16) with one draw of the
        pipeline's parameters. albumentations keeps its own generators; they are replaced on every
        call by ones seeded from `rng`, so the result depends on `rng` alone."""
        seed = int(rng.integers(2**63))
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        data: dict[str, Any] = {"image": image}
        if len(planes) == 1:
            data["mask"] = planes[0]  # one plane: albumentations' single-mask path is the cheaper one
        elif len(planes):
            data["masks"] = planes
        try:
            out = self.compose(**data)
        except Exception as exc:  # a user's pipeline failing on this input: say which pipeline and why
            raise ConfigError(f"{self.source}: the pipeline failed on a {image.shape[1]}×{image.shape[0]} image "
                              f"({type(exc).__name__}: {_first_line(exc)})") from exc
        new_image = out["image"]
        if not isinstance(new_image, np.ndarray) or new_image.dtype != np.uint8 or new_image.ndim != 3 \
                or new_image.shape[2] != 3:
            kind = getattr(new_image, "dtype", type(new_image).__name__)
            raise ConfigError(f"{self.source}: the pipeline returned a {kind} image of shape "
                              f"{getattr(new_image, 'shape', '?')}; images are written as H×W×3 uint8 "
                              "(leave out Normalize, ToFloat, ToGray with one channel, ToTensorV2)")
        if len(planes) == 1:
            new_planes = np.asarray(out["mask"])[None]
        elif len(planes):
            new_planes = np.asarray(out["masks"])
        else:
            new_planes = np.zeros((0, *new_image.shape[:2]), planes.dtype)
        if new_planes.shape[1:] != new_image.shape[:2]:
            raise ConfigError(f"{self.source}: masks {new_planes.shape[1:]} and image {new_image.shape[:2]} "
                              "came out of the pipeline with different sizes")
        return new_image, new_planes


def load_pipeline(value: dict[str, Any] | str | Path, base_dir: Path | None = None,
                  where: str = "augment.pipeline") -> Pipeline:
    """A pipeline from an inline dict (as `A.to_dict` makes it) or a YAML/JSON file saved with `A.save`
    (relative paths from `base_dir`). Errors are ConfigErrors naming the file or `where` and the
    transform."""
    if isinstance(value, dict):
        try:
            return build_pipeline(value, where)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    data = read_pipeline_file(path)
    try:
        return build_pipeline(data, str(path))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_pipeline_file(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "pipeline file", "YAML/JSON")  # YAML is a superset of the JSON that A.save writes
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an albumentations pipeline (a mapping saved with A.save)")
    return data


def build_pipeline(data: dict[str, Any], source: str) -> Pipeline:
    """Build and check a pipeline; raises ValueError naming the offending transform (by key path)."""
    root, prefix = (data["transform"], "transform") if "transform" in data else (data, "")
    if not isinstance(root, dict):
        raise ValueError(f"{prefix or '(top level)'}: expected a transform mapping with '__class_fullname__'")
    for key in ("bbox_params", "keypoint_params"):
        if root.get(key):
            raise ValueError(f"{_join(prefix, key)}: remove it; boxes are derived from the transformed masks, "
                             "never transformed themselves")
    _check_names(root, prefix)
    _check_finite(root, prefix)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            built = A.from_dict({"transform": root})
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(_locate_error(root, prefix) or _first_line(exc)) from None
    for w in caught:
        if "are not valid for transform" in str(w.message):
            raise ValueError(f"{_locate_error(root, prefix, strict=True) or prefix}: {w.message}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    compose = built if isinstance(built, A.Compose) else A.Compose([built])
    geometric, shared = _inspect(compose, prefix)
    return Pipeline(compose, source, geometric, shared)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_names(node: Any, where: str) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("__class_fullname__"), str):
        raise ValueError(f"{where or '(top level)'}: a transform needs '__class_fullname__' (the albumentations class)")
    name = node["__class_fullname__"]
    if shorten_class_name(name) not in SERIALIZABLE_REGISTRY:
        raise ValueError(f"{where or '(top level)'}: unknown albumentations {ALBUMENTATIONS_VERSION} "
                         f"transform {name!r}")
    children = node.get("transforms")
    if children is not None:
        if not isinstance(children, list):
            raise ValueError(f"{_join(where, 'transforms')}: expected a list of transforms")
        for i, child in enumerate(children):
            _check_names(child, f"{_join(where, 'transforms')}[{i}]")


def _check_finite(node: Any, where: str) -> None:
    """No parameter is infinite or NaN: albumentations takes them and then draws NaN pixels or fails
    inside its own code (found by tools/fuzz.py)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ValueError(f"{where or '(top level)'}: {node} is not a finite number")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        _check_finite(value, f"{where}[{key}]" if isinstance(key, int) else _join(where, str(key)))


def _locate_error(node: dict[str, Any], where: str, strict: bool = False) -> str | None:
    """The key path and message of the first transform that does not build on its own."""
    for i, child in enumerate(node.get("transforms") or []):
        found = _locate_error(child, f"{_join(where, 'transforms')}[{i}]", strict)
        if found:
            return found
    leaf = {k: v for k, v in node.items() if k != "transforms"}
    if "transforms" in node:
        leaf["transforms"] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            A.from_dict({"transform": leaf})
        except Exception as exc:  # noqa: BLE001 - albumentations raises pydantic and plain errors
            return f"{_named(where, node['__class_fullname__'])}: {_schema_message(exc)}"
    if strict and any("are not valid for transform" in str(w.message) for w in caught):
        return _named(where, node["__class_fullname__"])
    return None


def _named(where: str, name: str) -> str:
    return f"{where} ({name})" if where else name


def _schema_message(exc: Exception) -> str:
    """'rotate: Input should be a valid tuple' from albumentations' wrapped pydantic error."""
    cause = exc if callable(getattr(exc, "errors", None)) else exc.__cause__
    if callable(getattr(cause, "errors", None)):
        first = cause.errors()[0]
        keys = [str(p) for p in first.get("loc", ()) if not _is_type_tag(str(p))]
        return f"{'.'.join(keys)}: {first['msg']}" if keys else first["msg"]
    return _first_line(exc)


def _is_type_tag(part: str) -> bool:
    """pydantic puts union members ('tuple[float, float]', 'float') into error locations."""
    return any(c in part for c in "[(") or part in {"float", "int", "str", "bool", "dict", "list", "tuple", "none"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _walk(transform: Any, where: str):
    if isinstance(transform, BaseCompose):
        for i, child in enumerate(transform.transforms):
            yield from _walk(child, f"{_join(where, 'transforms')}[{i}]")
    else:
        yield transform, where


def _inspect(compose: Any, prefix: str) -> tuple[bool, bool]:
    """(moves pixels, instances may share label planes); raises ValueError for a transform that would
    move pixels without moving masks, or fill masks with a value other than 0."""
    geometric = False
    shared = True
    for t, where in _walk(compose, prefix):
        name = type(t).__name__
        if isinstance(t, ImageOnlyTransform):
            continue
        if not isinstance(t, BasicTransform) or "masks" not in t.targets:
            raise ValueError(f"{_named(where, name)}: does not transform masks, so labels would no longer "
                             "match the image")
        if name != "NoOp":
            geometric = True
        fill_mask = getattr(t, "fill_mask", None)
        if fill_mask is not None and np.any(np.asarray(fill_mask, dtype=float) != 0):
            raise ValueError(f"{_named(where, name)}: fill_mask must be 0 or null (a filled area belongs "
                             "to no instance)")
        if name in VALUE_TRANSFORMS or getattr(t, "mask_interpolation", NEAREST) != NEAREST \
                or getattr(t, "area_for_downscale", None) == "image_mask":
            shared = False
    return geometric, shared


def _plain(obj: Any) -> Any:
    """JSON-ready copy of a serialized pipeline (enums to values, tuples to lists)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    value = getattr(obj, "value", obj)
    return value.item() if isinstance(value, np.generic) else value


class TrainingCrops:
    """The detector's training views (vision_synth/detector.py): a random scale in `scale`, padding
    to and a random crop of `size`×`size`, then flips and a transpose when `flips`; boxes (XYXY
    pixels) carried by albumentations and kept while at least `min_visibility` of each stays in
    the crop. Each call is seeded by `rng` alone."""

    def __init__(self, size: int, scale: tuple[float, float], flips: bool, min_visibility: float = 0.3) -> None:
        steps = [A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), p=1.0),
                 A.PadIfNeeded(size, size, border_mode=0, fill=0), A.RandomCrop(size, size)]
        if flips:
            steps += [A.HorizontalFlip(), A.VerticalFlip(), A.Transpose()]
        self.compose = A.Compose(steps, bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["labels"], min_visibility=min_visibility, min_width=2, min_height=2))

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # one generator shared in turn by the transforms (set_random_seed would give each the same seed)
        seed = int(rng.integers(2**63))
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=image, bboxes=boxes, labels=labels)
        return (out["image"], np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
                np.asarray(out["labels"], np.int64).reshape(-1))
