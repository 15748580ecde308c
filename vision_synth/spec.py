"""Building blocks of config models: strict pydantic base and validated [min, max] ranges.

Every model forbids unknown keys. A range is written `[min, max]` (or one number for a fixed value)
and is checked where it is declared, so an error names the exact key path.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


class Spec(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _pair(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value, value)
    return value


def _range_check(low: float | None, high: float | None, low_open: bool, text: str):
    def check(value: tuple[float, float]) -> tuple[float, float]:
        a, b = value
        ok = a <= b
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
PositiveRange = _range(float, 0, None, True, "0 < min <= max")
NonNegativeRange = _range(float, 0, None, False, "0 <= min <= max")
UnitRange = _range(float, 0, 1, False, "0 <= min <= max <= 1")
CountRange = _range(int, 0, None, False, "0 <= min <= max (whole numbers)")
PositiveIntRange = _range(int, 0, None, True, "0 < min <= max (whole numbers)")


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw from a [min, max] range (exactly min when the range is a single value)."""
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


def integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """A uniform whole number from an inclusive [min, max] range."""
    low, high = bounds
    return int(low) if low == high else int(rng.integers(low, high + 1))
