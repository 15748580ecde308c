"""The search plan: the space-filling design (deterministic for a seed, distinct settings, balanced
choices, the whole of a small space) and the successive-halving rungs."""

import json

import pytest

from vision_synth.tune.space import design, rungs
from vision_synth.tune.spec import Dimension

SPACE = {"copy_paste.count": Dimension(choices=[[1, 2], [1, 4], [4, 12]]),
         "copy_paste.scale": Dimension(range=[0.5, 1.5]),
         "copies": Dimension(range=[8, 48]),
         "utility.lr": Dimension(range=[1e-4, 1e-2], log=True)}


def test_the_design_is_fixed_by_its_seed_and_spreads_over_every_key():
    a, b, c = design(SPACE, 12, seed=0), design(SPACE, 12, seed=0), design(SPACE, 12, seed=1)
    assert a == b and a != c
    assert len({json.dumps(s, sort_keys=True) for s in a}) == 12
    for settings in a:
        assert list(settings) == list(SPACE)
        assert 0.5 <= settings["copy_paste.scale"] <= 1.5
        assert isinstance(settings["copies"], int) and 8 <= settings["copies"] <= 48
        assert 1e-4 <= settings["utility.lr"] <= 1e-2
    # a Latin hypercube: 12 trials over 3 choices give each choice 4 times, and a range one point a stratum
    assert sorted(json.dumps(s["copy_paste.count"]) for s in a) == sorted(
        [json.dumps(c) for c in SPACE["copy_paste.count"].choices] * 4)
    scales = sorted(s["copy_paste.scale"] for s in a)
    assert all(0.5 + k / 12 <= v <= 0.5 + (k + 1) / 12 + 1e-3 for k, v in enumerate(scales))
    # log spacing: as many points in each decade
    assert sum(s["utility.lr"] < 1e-3 for s in a) == 6


def test_a_space_smaller_than_the_budget_is_tried_whole_in_order():
    space = {"a": Dimension(choices=["x", "y"]), "b": Dimension(range=[1, 3])}
    assert design(space, 12, seed=5) == [{"a": a, "b": b} for a in ("x", "y") for b in (1, 2, 3)]


@pytest.mark.parametrize("trials, seeds, max_seeds, eta, plan", [
    (12, 2, 4, 3, [(12, 2), (4, 4)]),
    (12, 2, 8, 3, [(12, 2), (4, 4), (2, 8)]),
    (12, 2, 2, 3, [(12, 2)]),
    (3, 2, 4, 3, [(3, 2)]),  # no rung of one trial: the confirmation measures the top one
    (4, 2, 5, 2, [(4, 2), (2, 4)]),
    (27, 3, 12, 3, [(27, 3), (9, 6), (3, 12)]),
])
def test_successive_halving_keeps_the_best_part_with_more_seeds(trials, seeds, max_seeds, eta, plan):
    assert rungs(trials, seeds, max_seeds, eta) == plan
