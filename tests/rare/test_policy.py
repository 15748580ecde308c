import pytest
import yaml

from vision_synth.errors import ConfigError
from vision_synth.rare.policy import RarePolicy, load_policy, plan_counts

CATS = [{"id": 1, "name": "scratch"}, {"id": 2, "name": "stain"}, {"id": 3, "name": "crack"}]
REAL = {1: 40, 2: 20, 3: 4}


@pytest.mark.parametrize("policy, expected", [
    ({"target_per_class": 30}, {1: 0, 2: 10, 3: 4}),  # crack capped at 4 (50 % share)
    ({"target_per_class": 30, "max_synthetic_fraction": 0.75}, {1: 0, 2: 10, 3: 12}),
    ({"rare_below": 10, "max_synthetic_fraction": 1.0}, {1: 0, 2: 0, 3: 6}),
    ({"target_per_class": 30, "classes": {"crack": {"target": 6, "max_synthetic_fraction": 0.2}}}, {1: 0, 2: 10, 3: 1}),
    ({"max_synthetic_fraction": 0.0, "target_per_class": 100}, {1: 0, 2: 0, 3: 0}),
    ({}, {1: 0, 2: 0, 3: 0}),
])
def test_plan_meets_target_within_cap(policy, expected):
    plans = plan_counts(RarePolicy.model_validate(policy), CATS, REAL)
    assert {p.category_id: p.add for p in plans} == expected
    for p in plans:
        assert p.add <= max(0, p.target - p.real)
        fraction = (p.add / (p.real + p.add)) if p.add else 0.0
        limit = (policy.get("classes", {}).get(p.name, {}).get("max_synthetic_fraction")
                 or policy.get("max_synthetic_fraction", 0.5))
        assert fraction <= limit + 1e-9


def test_unknown_class_in_policy_is_named():
    with pytest.raises(ConfigError, match=r"p.yaml: classes.dent: no category named 'dent'"):
        plan_counts(RarePolicy.model_validate({"classes": {"dent": {}}}), CATS, REAL, "p.yaml")


@pytest.mark.parametrize("data, message", [
    ({"target_per_clas": 3}, r"target_per_clas: unknown key"),
    ({"max_synthetic_fraction": 2}, r"max_synthetic_fraction: "),
    ({"classes": {"crack": {"source": "procedural"}}}, r"classes.crack: source procedural needs a 'defect'"),
    ({"classes": {"crack": {"source": "learned"}}}, r"classes.crack: source learned needs 'model'"),
    ({"classes": {"crack": {"source": "procedural", "defect": {"kind": "crack", "lenght": 1}}}},
     r"classes.crack.defect.lenght: unknown key"),
])
def test_bad_policy_names_file_and_key(tmp_path, data, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_procedural_defect_is_labelled_as_its_class(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"classes": {"crack": {"source": "procedural", "defect": {"kind": "crack"}}}}))
    assert load_policy(path, seed=5).classes["crack"].defect.category == "crack"
    assert load_policy(path, seed=5).seed == 5


@pytest.mark.parametrize("policy, expected", [
    ({"rare_below": "median"}, {1: 0, 2: 0, 3: 4}),  # median 20: crack raised towards it, capped at 4 (50 %)
    ({"rare_below": "median", "max_synthetic_fraction": 0.8}, {1: 0, 2: 0, 3: 16}),
])
def test_median_policy_raises_classes_below_the_median_count(policy, expected):
    plans = plan_counts(RarePolicy.model_validate(policy), CATS, REAL)
    assert {p.category_id: p.add for p in plans} == expected
    assert {p.name: p.target for p in plans}["crack"] == 20


def test_default_policy_and_command_line_overrides(tmp_path):
    assert load_policy(None).rare_below == "median" and load_policy(None).max_synthetic_fraction == 0.5
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"target_per_class": 50, "eval": {"ratio": 0.3}}))
    policy = load_policy(path, target=30, eval_coco="none")
    assert (policy.rare_below, policy.target_per_class, policy.has_eval) == (30, None, False)
    policy = load_policy(path, eval_coco="eval.json")
    assert (policy.eval.coco, policy.eval.ratio, policy.has_eval) == ("eval.json", None, True)
    path.write_text(yaml.safe_dump({"eval": "none"}))
    assert not load_policy(path).has_eval


def test_one_class_needs_a_target_and_the_message_says_so():
    with pytest.raises(ConfigError, match=r"one class \('crack', 4 real instances\).*pass --target N"):
        plan_counts(RarePolicy.model_validate({"rare_below": "median"}), CATS[2:], {3: 4})
    plans = plan_counts(RarePolicy.model_validate({"rare_below": 10}), CATS[2:], {3: 4})
    assert [(p.target, p.add) for p in plans] == [(10, 4)]


@pytest.mark.parametrize("data, message", [
    ({"rare_below": 0}, r"rare_below: must be at least 1"),
    ({"rare_below": "mean"}, r"rare_below"),
    ({"eval": "nothing"}, r"eval"),
])
def test_bad_targets_and_eval_are_named(tmp_path, data, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_policy(path)
