"""The common flags of the `vision-synth` commands that write: one definition, one meaning."""

import json

import pytest

from helpers import REPO, synthetic_samples, write_coco_dataset
from vision_synth.cli import build_parser, main

# (command line up to its own options, takes --overwrite): every command that writes
WRITING = [
    (["generate", "c.yaml"], True),
    (["augment", "--coco", "a.json", "--out", "o"], True),
    (["augment-rare", "--coco", "a.json", "--out", "o"], True),
    (["export", "d", "--format", "coco", "--out", "o"], True),
    (["merge", "a", "b", "--out", "o"], True),
    (["split", "d"], True),  # the split files beside annotations.json
    (["preview", "d"], True),  # DIR/previews/grid.png or --out PNG
    (["defects", "sample", "--model", "m", "--num", "2", "--out", "o"], True),
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


@pytest.fixture(scope="module")
def learned_model(tmp_path_factory):
    """A tiny `defects train` model (for `defects sample`)."""
    root = tmp_path_factory.mktemp("model")
    ann, images = write_coco_dataset(root / "data", synthetic_samples(n_images=6, size=(48, 48)))
    model = root / "model"
    assert main(["defects", "train", "--coco", str(ann), "--images", str(images), "--category", "class1",
                 "--steps", "2", "--size", "16", "--batch-size", "2", "--out", str(model), "--quiet"]) == 0
    return model


def _writing_commands(a, b, out, model):
    """command → (argv, what it writes, argv of a different earlier run that must be replaced)."""
    config = REPO / "configs" / "quickstart.yaml"
    generate = ["generate", str(config), "--out", str(out), "--num-images", "2"]
    coco = ["--coco", str(a / "annotations.json"), "--images", str(a / "images"), "--out", str(out)]
    augment = ["augment", *coco, "--copy-paste", "--format", "png"]
    return {
        # generate resumes the same config: what it refuses to mix in is another config's dataset
        "generate": (generate, out, [*generate, "--seed", "5"]),
        "augment": (augment, out, None),
        "augment-rare": (["augment-rare", *coco], out, None),
        "export": (["export", str(a), "--format", "coco", "--out", str(out)], out, None),
        "merge": (["merge", str(a), str(b), "--out", str(out)], out, None),
        "split": (["split", str(a), "--ratios", "0.5,0.5", "--allow-synthetic-eval"], a / "annotations_train.json",
                  None),
        "preview": (["preview", str(a), "--out", str(out)], out, None),
        "defects sample": (["defects", "sample", "--model", str(model), "--num", "2", "--steps", "2", "--out",
                            str(out)], out, None),
    }


def _content(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} \
        if path.is_dir() else path.read_bytes()


@pytest.mark.parametrize("command", ["generate", "augment", "augment-rare", "export", "merge", "split", "preview",
                                     "defects sample"])
def test_every_writing_command_replaces_only_with_overwrite(tmp_path, two_datasets, learned_model, capsys, command):
    a, b = two_datasets
    out = tmp_path / ("out.png" if command == "preview" else "out")
    argv, written, earlier = _writing_commands(a, b, out, learned_model)[command]
    assert main([*(earlier or argv), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress bar
    if written.is_dir() and earlier is None:
        (written / "old.txt").write_text("from before")  # a file the new output does not have
    elif not written.is_dir():
        written.write_bytes(b"from before")
    before = _content(written)

    assert main([*argv, "--quiet"]) == 2  # refused: not empty, no --overwrite
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {written}: ") and "--overwrite" in err, err
    assert _content(written) == before, "a refused run leaves what was there"

    assert main([*argv, "--quiet", "--overwrite"]) == 0
    assert capsys.readouterr().err == ""
    after = _content(written)
    assert after != before
    if isinstance(after, dict):
        assert "old.txt" not in after
    fresh = tmp_path / "fresh"
    assert main([*_writing_commands(a, b, fresh, learned_model)[command][0], "--quiet"]) == 0 or command == "split"
    if command not in ("split", "preview"):  # replaced by exactly what a new run writes
        assert sorted(after) == sorted(_content(fresh))
    assert not [p for p in tmp_path.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]


def test_export_and_merge_draw_progress_bars_without_quiet(tmp_path, two_datasets, capsys):
    a, b = two_datasets
    for command, argv in (("export", ["export", str(a), "--format", "coco"]), ("merge", ["merge", str(a), str(b)])):
        assert main([*argv, "--out", str(tmp_path / command)]) == 0
        assert f"{command} " in capsys.readouterr().err
        images = len(json.loads((tmp_path / command / "annotations.json").read_text())["images"])
        assert images == (3 if command == "export" else 5)


def test_an_output_name_too_long_for_the_file_system_is_one_line(tmp_path, two_datasets, capsys):
    out = tmp_path / ("x" * 300)
    assert main(["export", str(two_datasets[0]), "--format", "coco", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "File name too long" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
