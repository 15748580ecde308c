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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_what_a_killed_writer_left_in_a_folder_is_removed_and_nothing_else(tmp_path):
    import os

    gone = _dead_pid()
    stale = [tmp_path / f".quality.json.partial-{gone}-x7_k2m9q",
             tmp_path / f".checkpoint-000002.partial-{gone}-0a1b2c3d", tmp_path / f".unet.old-{gone}-0a1b2c3d"]
    live = tmp_path / f".report.html.partial-{os.getppid()}-abcdefgh"  # our parent: alive
    kept = [live, tmp_path / ".notes.old-2020-01", tmp_path / f"quality.json.partial-{gone}-0a1b2c3d",
            tmp_path / "annotations.json"]
    stale[1].mkdir()
    (stale[1] / "unet").mkdir()
    for path in [stale[0], stale[2], *kept]:
        path.write_text("x")
    from vision_synth.files import remove_stale_stages_in

    assert sorted(remove_stale_stages_in(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def test_an_atomic_write_builds_under_a_stage_name_of_its_process(tmp_path, monkeypatch):
    import os

    from vision_synth import files

    seen = []
    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b))[1])
    write_atomic(tmp_path / "a.json", "{}")
    assert len(seen) == 1 and seen[0].startswith(f".a.json.partial-{os.getpid()}-")
    assert files._stage_pid(seen[0]) == os.getpid()


def test_the_rule_of_what_may_be_written_over(tmp_path):
    from vision_synth.files import check_new_output, remove_tree

    check_new_output(tmp_path / "new")  # absent
    (tmp_path / "empty").mkdir()
    check_new_output(tmp_path / "empty")  # an empty folder
    (tmp_path / "grid.png").write_bytes(b"png")
    with pytest.raises(DatasetError, match=r"grid.png: already exists; choose a new preview or pass --overwrite"):
        check_new_output(tmp_path / "grid.png", what="preview")
    check_new_output(tmp_path / "grid.png", replace=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DatasetError, match="full: already exists and is not empty; .* --overwrite"):
        check_new_output(tmp_path / "full")
    remove_tree(tmp_path / "full")
    remove_tree(tmp_path / "grid.png")
    remove_tree(tmp_path / "absent")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_atomic_write_that_fails_leaves_neither_file_nor_temp_file(tmp_path, monkeypatch):
    import errno

    from vision_synth import files

    real = files.os.fdopen

    class Full:  # the file of a full disk: every write fails
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    write_atomic(tmp_path / "a.jpg", b"old")
    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: Full(real(fd, *a, **k)))  # atomic_open's writes
    monkeypatch.setattr(files.os, "write", full)  # write_atomic's
    with pytest.raises(OSError):
        write_atomic(tmp_path / "a.jpg", b"new")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "b.jpg", b"new")
    with pytest.raises(OSError), files.atomic_open(tmp_path / "c.json", "w") as f:
        f.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"] and (tmp_path / "a.jpg").read_bytes() == b"old"
