"""The base of every spec: the strict pydantic model, validated [min, max] ranges, the specs shared
by several rooms, and the one way a spec is read: `read_yaml` → `validate_spec`, whose errors name
the file and the key path (`validation_message`).

Every model forbids unknown keys. A range is written `[min, max]` (or one number for a fixed value)
and is checked where it is declared, so an error names the exact key path. This module imports no
other spec: config.py and every room's spec build on it, never the other way round.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vision_synth.errors import ConfigError


class Spec(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, and a number is
    finite (`.inf` or `.nan` is never a size, a weight or a threshold)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _pair(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value, value)
    return value


def _range_check(low: float | None, high: float | None, low_open: bool, text: str):
    def check(value: tuple[float, float]) -> tuple[float, float]:
        a, b = value
        ok = math.isfinite(a) and math.isfinite(b) and a <= b
        if low is not None:
            ok = ok and (a > low if low_open else a >= low)
        if high is not None:
            ok = ok and b <= high
        if not ok:
            raise ValueError(f"expected [min, max] with {text}")
        return value

    return check


def _range(kind: type, low: float | None, high: float | None, low_open: bool, text: str):
    return Annotated[tuple[kind, kind], BeforeValidator(_pair), AfterValidator(_range_check(low, high, low_open, text))]


FloatRange = _range(float, None, None, False, "min <= max")
NonNegativeRange = _range(float, 0, None, False, "0 <= min <= max")
UnitRange = _range(float, 0, 1, False, "0 <= min <= max <= 1")
CountRange = _range(int, 0, None, False, "0 <= min <= max (whole numbers)")
# Sizes: bounded far beyond any scene's, so that a slip (1e9) is refused rather than allocated or drawn
# for hours. SCALE_MAX bounds a size given as a fraction of the image's shorter side (or a size
# factor), PIXELS_MAX one given in pixels.
SCALE_MAX = 4.0
PIXELS_MAX = 1024.0
ScaleRange = _range(float, 0, SCALE_MAX, True, f"0 < min <= max <= {SCALE_MAX:g}")
NonNegativeScaleRange = _range(float, 0, SCALE_MAX, False, f"0 <= min <= max <= {SCALE_MAX:g}")
PixelRange = _range(float, 0, PIXELS_MAX, True, f"0 < min <= max <= {PIXELS_MAX:g} (pixels)")
PositiveCountRange = _range(int, 0, 10_000, True, "0 < min <= max <= 10000 (whole numbers)")


NAME_MAX = 255  # bytes in one file or folder name on the usual file systems (ext4, APFS, NTFS)


def long_name(path: str) -> str | None:
    """The first part of `path` longer than a file name may be, else None."""
    return next((part for part in Path(path).parts if len(part.encode()) > NAME_MAX), None)


def _path_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot hold a NUL character")
    long = long_name(value)
    if long is not None:
        raise ValueError(f"the name {long[:24] + '…'!r} is {len(long.encode())} bytes, longer than a file name may "
                         f"be ({NAME_MAX})")
    return value


# a path or hub id written in a spec: refused where it is written when no file system could hold it
PathText = Annotated[str, AfterValidator(_path_text)]


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw from a [min, max] range (exactly min when the range is a single value, with no
    draw). The double `rng.uniform(low, high)` gives, low + (high − low)·random() in float64, at a
    third of its cost (numpy's scalar call is ~2 µs: the compositor makes some 50 such draws an image)."""
    low, high = bounds
    if low == high:
        return float(low)
    low = float(low)
    return low + (float(high) - low) * rng.random()


def integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """A uniform whole number from an inclusive [min, max] range."""
    low, high = bounds
    return int(low) if low == high else int(rng.integers(low, high + 1))


# ------------------------------------------------------------------------------- shared specs
class ColorJitter(Spec):
    """Multiplicative factors drawn per instance (1 = unchanged); hue shift in degrees."""

    brightness: NonNegativeRange = (1.0, 1.0)
    contrast: NonNegativeRange = (1.0, 1.0)
    saturation: NonNegativeRange = (1.0, 1.0)
    hue: FloatRange = (0.0, 0.0)


class BlendSpec(Spec):
    """How objects are pasted: hard alpha, feathered alpha, or Poisson (OpenCV seamlessClone)."""

    mode: Literal["hard", "feather", "poisson"] = "feather"
    feather: float = Field(1.5, gt=0, le=20, description="Gaussian sigma in pixels for mode: feather")


# ---------------------------------------------------------------------------------- key paths
def key_path_parts(key: str) -> list[str | int]:
    """'scene.defects[2].width' → ['scene', 'defects', 2, 'width']."""
    parts: list[str | int] = []
    for token in key.split("."):
        name, *indices = token.split("[")
        if not name or not all(i.endswith("]") and i[:-1].isdigit() for i in indices):
            raise ValueError(f"{key}: expected a key path like a.b or a.b[2].c")
        parts += [name, *(int(i[:-1]) for i in indices)]
    return parts


def with_key_paths(data: Any, edits: dict[str, Any]) -> Any:
    """A copy of a spec's raw data (as read from YAML) with each dotted key path of `edits` set to its
    value (`{"copy_paste.count": [1, 4], "scene.defects[0].width": [1, 3]}`); mappings missing on the
    way (or null) are created, list items must exist. `data` is left as it was. ValueError names the
    key path that cannot be set."""

    def put(node: Any, parts: list[str | int], value: Any, key: str) -> Any:
        if not parts:
            return value
        head, rest = parts[0], parts[1:]
        if isinstance(head, int):
            if not isinstance(node, list) or head >= len(node):
                raise ValueError(f"{key}: no item [{head}] here (the list has {len(node) if isinstance(node, list) else 0})")
            out = list(node)
            out[head] = put(node[head], rest, value, key)
            return out
        if node is None:
            node = {}
        if not isinstance(node, dict):
            raise ValueError(f"{key}: {head!r} is set inside a value that is not a mapping ({node!r})")
        return {**node, head: put(node.get(head), rest, value, key)}

    for key, value in edits.items():
        data = put(data, key_path_parts(key), value, key)
    return data


def key_path_value(data: Any, key: str, default: Any = None) -> Any:
    """The value at a dotted key path of raw spec data (`default` where it is not set)."""
    node = data
    for part in key_path_parts(key):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return default
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return default
    return node


# ------------------------------------------------------------------------------------ loading
def read_yaml(path: Path, what: str = "file", syntax: str = "YAML") -> Any:
    """The parsed YAML of `path` (None for an empty file); a ConfigError naming the file (and the
    line of a syntax error) otherwise. `what` names the file in "not found" (e.g. "pipeline file"),
    `syntax` the format in "invalid ..." (e.g. "YAML/JSON")."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError) as exc:  # not UTF-8; a NUL byte in the path (shown escaped)
        shown = repr(str(path)) if "\x00" in str(path) else path
        raise ConfigError(f"{shown}: cannot read ({exc})") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid {syntax} (nested too deeply to be a config)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise ConfigError(f"{path}:{where} invalid {syntax} ({problem})") from None


def _key_path(loc: tuple, data: Any) -> str:
    """'scene.defects[2].width' from a pydantic error location, skipping union tags that are not keys."""
    parts: list[str] = []
    node = data
    for i, key in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(key, int) and isinstance(node, list):
            parts.append(f"[{key}]")
            node = node[key] if key < len(node) else None
        elif isinstance(node, dict) and key in node:
            parts.append(f".{key}" if parts else str(key))
            node = node[key]
        elif last or not isinstance(node, dict):
            parts.append(f".{key}" if parts else str(key))
            node = None
        # else: a discriminated-union tag or validator name pydantic puts in the location; not a key
    return "".join(parts) or "(top level)"


def _message(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else kind


def validation_message(source: str, error: ValidationError, data: Any) -> str:
    """One line: `source: key.path: what is wrong` (and how many more errors there are)."""
    errors = error.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {_key_path(first['loc'], data)}: {_message(first)}{more}"


M = TypeVar("M", bound=BaseModel)


def validate_spec(model: type[M], data: Any, source: str) -> M:
    """`model` validated from `data`, or a ConfigError of one line naming `source` and the key path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(source, exc, data)) from None
