"""The common flags of the `vision-synth` commands that write: one definition, one meaning."""

import json

import pytest

from helpers import synthetic_samples, write_coco_dataset
from vision_synth.cli import build_parser, main

# (command line up to its own options, takes --overwrite): every command that writes
WRITING = [
    (["generate", "c.yaml"], True),
    (["augment", "--coco", "a.json", "--out", "o"], True),
    (["augment-rare", "--coco", "a.json", "--out", "o"], True),
    (["export", "d", "--format", "coco", "--out", "o"], True),
    (["merge", "a", "b", "--out", "o"], True),
    (["defects", "train", "--coco", "a.json", "--category", "x", "--out", "o"], False),  # resumes
    (["check", "d"], False),  # updates the dataset's own reports
]


def _option_help(argv):
    """{option: help} of the (sub)command `argv` names."""
    parser = build_parser()
    for word in argv:
        sub = next((a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), None)
        if sub is None or word not in sub.choices:
            break
        parser = sub.choices[word]
    return {s: a.help for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("argv, overwrite", WRITING, ids=[" ".join(w[0][:2]) for w in WRITING])
def test_every_writing_command_takes_the_common_flags(argv, overwrite):
    args = build_parser().parse_args([*argv, "--quiet", *(["--overwrite"] if overwrite else [])])
    assert args.quiet is True and getattr(args, "overwrite", False) is overwrite
    helps = _option_help(argv)
    assert helps["--quiet"] == "no progress bars"  # the same definition everywhere
    assert ("--overwrite" in helps) is overwrite


@pytest.fixture
def two_datasets(tmp_path):
    a, _ = write_coco_dataset(tmp_path / "a", synthetic_samples(n_images=3, seed=0))
    b, _ = write_coco_dataset(tmp_path / "b", synthetic_samples(n_images=2, seed=1))
    return a.parent, b.parent


@pytest.mark.parametrize("command", ["export", "merge"])
def test_export_and_merge_take_quiet_and_replace_only_with_overwrite(tmp_path, two_datasets, capsys, command):
    a, b = two_datasets
    out = tmp_path / "out"
    argv = (["export", str(a), "--format", "coco"] if command == "export" else ["merge", str(a), str(b)]) + [
        "--out", str(out)]
    assert main(argv) == 0
    assert f"{command} " in capsys.readouterr().err  # a progress bar without --quiet
    (out / "old.txt").write_text("from before")

    assert main([*argv, "--quiet"]) == 2  # not empty, no --overwrite
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: already exists and is not empty") and "--overwrite" in err
    assert (out / "old.txt").exists()

    assert main([*argv, "--quiet", "--overwrite"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress bar
    assert not (out / "old.txt").exists()
    images = len(json.loads((out / "annotations.json").read_text())["images"])
    assert images == (3 if command == "export" else 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]  # no stage left beside it


def test_an_output_name_too_long_for_the_file_system_is_one_line(tmp_path, two_datasets, capsys):
    out = tmp_path / ("x" * 300)
    assert main(["export", str(two_datasets[0]), "--format", "coco", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "File name too long" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
