"""The search plan of `vision-synth tune`, as pure functions: the space-filling design of the first
trials, and the rungs of successive halving (how many trials go on, with how many seeds).

Design: a Latin hypercube over the unit cube (each key's range cut into `trials` strata, one point
in each), the most spread of a few such draws (largest smallest distance between points), mapped
to each key's values; settings drawn twice are drawn again. A space of fewer distinct settings
than trials is tried whole, in order. Everything comes from `rng_for_dataset(seed, "tune-design")`.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np

from vision_synth.seeding import rng_for_dataset

DESIGN_DRAWS = 16  # Latin hypercubes drawn per batch; the most spread one is kept
MAX_BATCHES = 50  # batches drawn to find distinct settings before taking fewer trials


def _value(dim, u: float) -> Any:
    """The value of a key at position u in [0, 1) of its range (or its list of choices)."""
    if dim.choices is not None:
        return dim.choices[min(int(u * len(dim.choices)), len(dim.choices) - 1)]
    low, high = dim.range
    if dim.integer:
        if dim.log:
            return int(min(high, max(low, round(math.exp(math.log(low) + u * (math.log(high) - math.log(low)))))))
        return int(min(high, low + math.floor(u * (high - low + 1))))
    x = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if dim.log else low + u * (high - low)
    return float(f"{x:.4g}")  # settings people read and write back into a file


def _finite_size(space: dict) -> int | None:
    sizes = []
    for dim in space.values():
        if dim.choices is not None:
            sizes.append(len(dim.choices))
        elif dim.integer:
            sizes.append(dim.range[1] - dim.range[0] + 1)
        else:
            return None
    return math.prod(sizes)


def _latin_hypercube(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    best, best_spread = None, -1.0
    for _ in range(DESIGN_DRAWS):
        u = (np.stack([rng.permutation(n) for _ in range(d)], axis=1) + rng.random((n, d))) / n
        spread = float(np.min(np.linalg.norm(u[:, None] - u[None], axis=-1)[np.triu_indices(n, 1)])) if n > 1 else 0.0
        if spread > best_spread:
            best, best_spread = u, spread
    return best


def design(space: dict, trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` distinct settings (key → value, keys in the space's order); all of them, in order,
    when the space holds no more than `trials`."""
    keys = list(space)
    size = _finite_size(space)
    if size is not None and size <= trials:
        axes = [space[k].choices if space[k].choices is not None else list(range(space[k].range[0], space[k].range[1] + 1))
                for k in keys]
        return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]
    rng = rng_for_dataset(seed, "tune-design")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(MAX_BATCHES):
        for point in _latin_hypercube(rng, trials, len(keys)):
            settings = {k: _value(space[k], float(u)) for k, u in zip(keys, point)}
            text = json.dumps(settings, sort_keys=True)
            if text not in seen:
                seen.add(text)
                out.append(settings)
            if len(out) == trials:
                return out
    return out


def rungs(trials: int, seeds: int, max_seeds: int, eta: int) -> list[tuple[int, int]]:
    """(trials measured, seeds each) per rung: all trials with `seeds`, then the best 1/eta with twice
    the seeds, up to `max_seeds`; no rung of a single trial (the confirmation measures the top one)."""
    plan = [(trials, seeds)]
    n, s = trials, seeds
    while s < max_seeds:
        n, s = math.ceil(n / eta), min(max_seeds, s * 2)
        if n < 2:
            break
        plan.append((n, s))
    return plan
