"""Bad tune input: one line naming the file and the key (and the trial and base key where a setting
is the problem), exit 2, no traceback; nothing written or trained before every trial is checked."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tune_helpers import spec_data, write_setup
from vision_synth.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return write_setup(tmp_path_factory.mktemp("tune_spec"))


def _space(**dims):
    return {"space": dims}


CASES = [
    ({"bogus": 1}, r"tune\.yaml: bogus: unknown key"),
    ({"base": {"kind": "nope", "config": "base.yaml"}}, r"tune\.yaml: base\.kind: input should be 'augment', 'rare' or 'generate'"),
    ({"base": {"kind": "augment", "config": "missing.yaml"}}, r"tune\.yaml: base\.config: file .*missing\.yaml not found"),
    ({"base": {"kind": "rare", "config": "base.yaml", "seed": 3}}, r"tune\.yaml: base: seed: applies to kind augment only"),
    ({"val": {"coco": "nowhere.json"}}, r"tune\.yaml: val\.coco: file .*nowhere\.json not found"),
    (_space(copies={"choices": [1], "range": [1, 2]}), r"tune\.yaml: space\.copies: give exactly one of choices"),
    (_space(copies={"range": [4, 2]}), r"tune\.yaml: space\.copies: range: expected \[low, high\] with low < high"),
    (_space(**{"utility.nope": {"choices": [1]}}), r"tune\.yaml: space: utility\.nope: not a key of the utility training"),
    (_space(**{"utility.seed": {"choices": [1]}}), r"tune\.yaml: space: utility\.seed: not a key of the utility training"),
    (_space(**{"a..b": {"choices": [1]}}), r"tune\.yaml: space: a\.\.b: expected a key path"),
    ({"budget": {"seeds": 4, "max_seeds": 2}}, r"tune\.yaml: budget: max_seeds: expected at least seeds \(4\)"),
    ({"budget": {"confirm_seeds": 5}}, r"tune\.yaml: budget: confirm_seeds: expected at least 6: with fewer paired "
                                       r"seeds the utility verdict's sign test can never be decisive"),
    ({"utility": {"steps": 0}}, r"tune\.yaml: utility\.steps: input should be greater than or equal to 1"),
    # a setting the base refuses: the spec, the trial and its settings, the base file and its key
    (_space(**{"copy_paste.count": {"choices": [[5, 2]]}}),
     r"tune\.yaml: space: trial 0 \(copy_paste\.count=\[5, 2\]\): .*base\.yaml: copy_paste\.count: expected \[min, max\]"),
    (_space(**{"copy_pasta.count": {"choices": [[1, 2]]}}),
     r"tune\.yaml: space: trial 0 \(copy_pasta\.count=\[1, 2\]\): .*base\.yaml: copy_pasta: unknown key"),
    (_space(**{"utility.real_share": {"choices": [1.5]}}),
     r"tune\.yaml: space: trial 0 \(utility\.real_share=1\.5\): utility: real_share: input should be less than 1"),
    (_space(source={"choices": [{"images": "x"}]}), r"space\.source\.choices\[0\]: coco: required key is missing"),
    # val never feeds generation or training
    ({"val": {"coco": "train/annotations.json", "images": "train/images"}},
     r"tune\.yaml: train: image .*000000001\.png is also a val image .*; val must never feed generation or training"),
]


@pytest.mark.parametrize("changes, message", CASES)
def test_bad_input_is_one_line_naming_the_file_and_key(setup, tmp_path, capsys, changes, message):
    data = spec_data(setup, **changes)
    spec = setup["root"] / "tune.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["tune", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not out.exists(), "nothing is written before every trial is checked"


def test_a_source_image_that_is_also_a_val_image_is_refused_whatever_its_name(setup, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(setup["val"].parent, copy)
    (copy / "images" / "000000001.png").rename(copy / "images" / "renamed.png")
    text = (copy / "annotations.json").read_text().replace("000000001.png", "renamed.png")
    (copy / "annotations.json").write_text(text)
    data = spec_data(setup, space={"source": {"choices": [{"coco": str(copy / "annotations.json"),
                                                           "images": str(copy / "images")}]}})
    spec = setup["root"] / "tune.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["tune", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "source" in err and "renamed.png is also a val image" in err


def test_the_shipped_tune_spec_checks_out():
    from helpers import REPO
    from vision_synth.tune.search import Search
    from vision_synth.tune.spec import load_tune_spec

    spec = load_tune_spec(REPO / "configs" / "tune" / "nuclei.yaml")
    search = Search(spec, REPO / "out" / "unused")
    search.prepare()  # every trial's base loads, and no val image feeds anything
    assert len(search.prepared) == 12 and len({p.key for p in search.prepared}) == 12
    assert search.plan == [(12, 2), (4, 4)]
