"""spec.py's key paths: dotted paths set into raw spec data without touching the input."""

import pytest

from vision_synth.spec import key_path_value, with_key_paths


@pytest.mark.parametrize("data, edits, expected", [
    ({"a": {"b": 1}}, {"a.c": 2}, {"a": {"b": 1, "c": 2}}),
    ({"a": None}, {"a.b": [1, 4]}, {"a": {"b": [1, 4]}}),
    ({}, {"x.y.z": 1}, {"x": {"y": {"z": 1}}}),
    ({"l": [{"w": 1}, {"w": 2}]}, {"l[1].w": 5}, {"l": [{"w": 1}, {"w": 5}]}),
    ({"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
])
def test_key_paths_are_set_in_a_copy(data, edits, expected):
    before = repr(data)
    assert with_key_paths(data, edits) == expected
    assert repr(data) == before
    for key, value in edits.items():
        assert key_path_value(expected, key) == value


@pytest.mark.parametrize("data, key, message", [
    ({"l": [1]}, "l[3].w", r"l\[3\]\.w: no item \[3\]"),
    ({"a": 3}, "a.b", r"a\.b: 'b' is set inside a value that is not a mapping"),
    ({}, "a..b", "expected a key path"),
    ({}, "a[x]", "expected a key path"),
])
def test_a_key_path_that_cannot_be_set_is_named(data, key, message):
    with pytest.raises(ValueError, match=message):
        with_key_paths(data, {key: 1})
