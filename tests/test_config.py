"""Each class of bad config: exit 2, one line naming the file and key path, nothing written."""

import subprocess
import sys

import pytest
import yaml

from helpers import REPO, small_config
from vision_synth.cli import main
from vision_synth.config import load_config
from vision_synth.errors import ConfigError


def defect(**fields):
    return {"kind": "scratch", "category": "scratch", **fields}


def inline_scene(**changes):
    scene = {"defects": [defect(), {"kind": "pit", "category": "pit"}, defect(width=[2, 3])]}
    scene.update(changes)
    return scene


BAD = [
    # (change to the config, key path expected in the message, words expected)
    ({"num_imags": 3}, "num_imags", "unknown key"),
    ({"num_images": "many"}, "num_images", "integer"),
    ({"num_images": 0}, "num_images", "greater than or equal to 1"),
    ({"image": {"width": 64}}, "image.height", "required"),
    ({"image": {"width": 64, "height": 64, "format": "gif"}}, "image.format", "'jpeg' or 'png'"),
    ({"scene": inline_scene(defects=[defect(), defect(), defect(width=[3, 1])])}, "scene.defects[2].width",
     "expected [min, max] with 0 < min <= max"),
    ({"scene": inline_scene(defects=[defect(lenght=[0.1, 0.2])])}, "scene.defects[0].lenght", "unknown key"),
    ({"scene": inline_scene(defects=[{"kind": "blob", "category": "x"}])}, "scene.defects[0]", "blob"),
    ({"scene": inline_scene(placement={"max_overlap": 1.5})}, "scene.placement.max_overlap", "less than or equal to 1"),
    ({"scene": "no_such_scene"}, "scene 'no_such_scene'", "no scenes/no_such_scene/scene.yaml"),
    ({"categories": [{"id": 1, "name": "scratch"}]}, "scene.defects[1].category", "unknown category 'pit'"),
    ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "categories", "duplicate id"),
    ({"output": {"segmentation": "mask"}}, "output.segmentation", "'rle' or 'polygon'"),
    # names and paths that would leave their folders, or that no file system takes
    ({"scene": "x" * 300}, "scene 'xxxx", "300 bytes, longer than a file name may be (255)"),
    ({"scene": "../../etc"}, "scene '../../etc'", "a scene name is the name of a folder under scenes/"),
    ({"scene": "y" * 300 + ".yaml"}, "scene", "305 bytes, longer than a file name may be"),
    ({"scene": "../../elsewhere/scene.yaml"}, "scene", "resolves outside"),
    ({"scene": inline_scene(objects=[{"category": "ball", "source": {"kind": "sprites", "path": "../../sprites"}}])},
     "scene.objects[0].source.path", "'../../sprites' resolves outside"),
    ({"scene": inline_scene(region="sub/../../../region.png")}, "scene.region", "resolves outside"),
    ({"scene": inline_scene(background={"kind": "images", "images": "../../photos/*.jpg"})},
     "scene.background.images", "resolves outside"),
    ({"name": "n" * 300}, "name", "300 bytes, longer than a folder name may be"),
    ({"name": "../../evil"}, "name", "plain folder name"),
    # found by tools/fuzz.py: sizes and ids beyond what can be drawn or stored (cv2 overflow, MemoryError,
    # int64 overflow), infinities, and line breaks in names (the message stays one line)
    ({"scene": inline_scene(defects=[defect(length=[0.1, 1e9])])}, "scene.defects[0].length",
     "expected [min, max] with 0 < min <= max <= 4"),
    ({"scene": inline_scene(defects=[defect(width=[1, 5000])])}, "scene.defects[0].width", "<= 1024 (pixels)"),
    ({"scene": inline_scene(defects=[{"kind": "particles", "category": "x", "dots": [1, 10**9]}])},
     "scene.defects[0].dots", "<= 10000"),
    ({"scene": inline_scene(objects=[{"category": "ball", "scale": [0.1, 1e18],
                                      "source": {"kind": "sprites", "path": "sprites"}}])},
     "scene.objects[0].scale", "<= 4"),
    ({"scene": inline_scene(blending={"feather": float("inf")})}, "scene.blending.feather", "finite number"),
    ({"scene": inline_scene(defects=[defect(curvature=[0, float("nan")])])}, "scene.defects[0].curvature",
     "finite number"),
    ({"categories": [{"id": 2**63, "name": "scratch"}]}, "categories[0].id",
     "less than or equal to 9223372036854775807"),
    ({"categories": [{"id": 1, "name": "scr\natch"}, {"id": 2, "name": "pit"}]}, "scene.defects[0].category",
     "unknown category 'scratch' (categories: scr\\natch, pit)"),
]


@pytest.mark.parametrize("change, key, words", BAD, ids=[b[1] for b in BAD])
def test_bad_config_names_file_and_key(write_config, tmp_path, capsys, change, key, words):
    data = small_config(scene=inline_scene())
    data.update(change)
    path = write_config(data)
    out = tmp_path / "out"
    code = main(["generate", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, "one line"
    assert err.startswith(f"error: {path}") or err.startswith("error: scene"), err
    assert key in err and words in err, err
    assert not out.exists(), "nothing written"


def _project(folder, sprites_path: str):
    """folder/scenes/mine/scene.yaml with one sprite object at `sprites_path`; the config that names it."""
    scene = folder / "scenes" / "mine" / "scene.yaml"
    scene.parent.mkdir(parents=True)
    scene.write_text(yaml.safe_dump(
        {"objects": [{"category": "ball", "source": {"kind": "sprites", "path": sprites_path}}]}))
    config = folder / "configs" / "mine.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(small_config(scene="mine")))
    return config


def test_scene_file_assets_stay_inside_the_scene_folder(tmp_path, capsys):
    path = _project(tmp_path, "../other_scene/sprites")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    scene = tmp_path / "scenes" / "mine" / "scene.yaml"
    assert err == (f"error: {scene}: objects[0].source.path: '../other_scene/sprites' resolves outside "
                   f"{scene.parent}; keep relative paths inside that folder, or write the path absolute")


def test_absolute_asset_paths_and_the_shipped_relative_ones_are_kept(tmp_path):
    sprites = REPO / "scenes" / "tabletop_objects" / "sprites" / "ball"
    config = load_config(_project(tmp_path, str(sprites)))  # absolute: the user's own choice
    assert config.scene.resolve(config.scene.objects[0].source.path) == sprites
    # a config under configs/ may name assets of the project's scenes/ (configs/bench_512.yaml)
    bench = load_config(REPO / "configs" / "bench_512.yaml")
    assert bench.scene.resolve(bench.scene.objects[0].source.path).resolve() == sprites


def test_yaml_syntax_error_names_line(write_config, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nimage: {width: 64\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+"):
        load_config(path)


@pytest.mark.parametrize("text, message", [
    ("name: x\x00\n", r"bad.yaml: invalid YAML \(unacceptable character #x0000: special characters are not "
                       r"allowed in \"<unicode string>\", position 7\)$"),
    ("[" * 100000 + "]" * 100000, r"bad.yaml: invalid YAML \(nested too deeply to be a config\)$"),
], ids=["NUL byte", "nested 100,000 deep"])
def test_a_yaml_error_is_one_line(tmp_path, text, message):
    """PyYAML's own messages run over several lines, and deep nesting overflows its recursion (found by
    tools/fuzz.py): either is one line naming the file."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_validate_command_and_module_entry_point_exit_codes(write_config):
    good = write_config(small_config(), "good.yaml")
    bad = write_config(small_config(num_images=-1), "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "vision_synth", "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    fail = subprocess.run([sys.executable, "-m", "vision_synth", "validate", str(bad)], capture_output=True, text=True)
    assert fail.returncode == 2
    assert "Traceback" not in fail.stderr and fail.stderr.strip().count("\n") == 0
    assert "num_images" in fail.stderr


def test_overrides_and_scene_lookup(write_config):
    cfg = load_config(write_config(small_config()), num_images=5, seed=9)
    assert (cfg.num_images, cfg.seed) == (5, 9)
    assert cfg.scene.name == "surface_defects"
    assert [c.id for c in cfg.categories] == list(range(1, len(cfg.categories) + 1))


def test_config_hash_ignores_count_only(write_config):
    base = load_config(write_config(small_config()))
    assert load_config(write_config(small_config(num_images=99))).config_hash() == base.config_hash()
    assert load_config(write_config(small_config(seed=4))).config_hash() != base.config_hash()


def test_every_shipped_config_validates():
    # dataset configs only (configs/pipelines, configs/policies and configs/quality hold other files);
    # diffusion configs need model weights: tests/diffusion/test_configs.py checks them
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if not path.name.startswith("diffusion"):
            assert main(["validate", str(path)]) == 0, path
    from vision_synth.quality.check import check_quality_inputs
    from vision_synth.quality.spec import load_quality_spec

    for path in sorted((REPO / "configs" / "quality").glob("*.yaml")):  # runnable as they are: no reference needed
        check_quality_inputs(load_quality_spec(path))


def test_an_error_about_a_diffusion_config_key_names_the_config(tmp_path, monkeypatch, capsys):
    """diffusion.model and diffusion.prompts are checked when the generator is built; the message names
    the config file as every other config error does (found by tools/fuzz.py)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = yaml.safe_load((REPO / "configs" / "diffusion_inpaint.yaml").read_text())
    data["diffusion"]["model"] = "no_such_model_folder"
    path = tmp_path / "configs" / "diffusion.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: diffusion.model 'no_such_model_folder': folder not found\n"


@pytest.mark.parametrize("model, words", [
    ("d" * 300,
     "diffusion.model: the name 'dddddddddddddddddddddddd…' is 300 bytes, longer than a file name may be (255)"),
    ("models/a\x00b", "diffusion.model: a path cannot hold a NUL character"),
])
def test_a_model_path_no_file_system_holds_is_refused_where_it_is_written(tmp_path, capsys, model, words):
    """Before, the name reached the file system (an OSError naming only the name; a NUL byte a ValueError)."""
    data = yaml.safe_load((REPO / "configs" / "diffusion_inpaint.yaml").read_text())
    data["diffusion"]["model"] = model
    path = tmp_path / "configs" / "diffusion.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {words}\n"
