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
