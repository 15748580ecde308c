"""vision_synth.files: a file or an output folder appears whole or not at all."""

from __future__ import annotations

import json

import pytest

from vision_synth.errors import DatasetError
from vision_synth.files import dumps_json, staged_output, write_atomic, write_json


def test_write_atomic_replaces_whole_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "a.txt"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_json_is_compact_or_indented_and_keeps_unicode(tmp_path):
    data = {"name": "café", "ids": [1, 2]}
    assert dumps_json(data) == '{"name":"café","ids":[1,2]}'
    write_json(tmp_path / "r.json", data, indent=2)
    text = (tmp_path / "r.json").read_text()
    assert text.endswith("}\n") and "café" in text and json.loads(text) == data


def test_a_staged_folder_appears_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("a")
        assert not out.exists() and stage.name.startswith(".out.partial-")
    assert (out / "a.txt").read_text() == "a" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_stage_leaves_nothing_and_the_old_output_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(out, replace=True) as stage:
            (stage / "new.txt").write_text("new")
            raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_output(out, replace=True) as stage:
        (stage / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_without_replace_a_non_empty_output_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(DatasetError, match="out: already exists and is not empty"):
        with staged_output(tmp_path / "out"):
            pass
    with staged_output(tmp_path / "empty") as stage:  # an empty folder may be filled
        (stage / "y").write_text("y")
    assert (tmp_path / "empty" / "y").exists()
