"""End to end: `vision-synth generate` writes a COCO dataset whose labels are exact and reproducible."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from helpers import check_coco_labels, coco_self_eval, small_config
from vision_synth.cli import main


def digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".vision_synth" not in p.parts and p.suffix != ".md")
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def surface_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("surface")
    path = root / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(small_config(num_images=10, image={"width": 128, "height": 96, "format": "png"})))
    out = root / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    return path, out


@pytest.fixture(scope="module")
def tabletop_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabletop")
    path = root / "config.yaml"
    import yaml

    data = {"name": "tt", "seed": 1, "num_images": 8, "image": {"width": 128, "height": 128},
            "scene": "tabletop_objects", "output": {"amodal": True}}
    path.write_text(yaml.safe_dump(data))
    out = root / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    return path, out


@pytest.mark.parametrize("run", ["surface_run", "tabletop_run"])
def test_labels_are_exact_and_score_ap_1(run, request):
    _, out = request.getfixturevalue(run)
    ann = out / "annotations.json"
    data = check_coco_labels(ann)
    assert len(data["annotations"]) > 10
    assert coco_self_eval(ann, "bbox") == pytest.approx(1.0)
    assert coco_self_eval(ann, "segm") == pytest.approx(1.0)
    for im in data["images"]:
        assert (out / "images" / im["file_name"]).is_file()
        assert im["file_name"] == f"{im['id']:09d}.{im['file_name'].rsplit('.', 1)[1]}"
        assert im["synthetic"] is True and im["config_hash"] and im["seed"] is not None
    assert (out / "previews" / "grid.png").is_file() and (out / "dataset_card.md").is_file()


def test_every_defect_class_appears(surface_run):
    _, out = surface_run
    data = json.loads((out / "annotations.json").read_text())
    present = {a["category_id"] for a in data["annotations"]}
    assert len(present) >= 5, present


def test_occlusion_recorded_and_amodal_contains_visible(tabletop_run):
    from vision_synth import masks as mask_ops

    _, out = tabletop_run
    data = json.loads((out / "annotations.json").read_text())
    occluded = [a for a in data["annotations"] if a["occlusion"] > 0]
    assert occluded, "tabletop scenes should contain occlusion"
    for a in data["annotations"]:
        visible = mask_ops.decode_rle(a["segmentation"])
        amodal = mask_ops.decode_rle(a["amodal_segmentation"])
        assert not (visible & ~amodal).any()
        assert a["occlusion"] == pytest.approx(1 - visible.sum() / amodal.sum(), abs=1e-3)


def test_rerun_is_byte_identical(surface_run, tmp_path):
    path, out = surface_run
    again = tmp_path / "again"
    assert main(["generate", str(path), "--out", str(again), "--quiet"]) == 0
    assert digest(again) == digest(out)


def test_sample_depends_only_on_seed_and_index(surface_run, tmp_path):
    """A run of 4 images equals the first 4 of a run of 10; another seed differs."""
    path, out = surface_run
    short = tmp_path / "short"
    assert main(["generate", str(path), "--out", str(short), "--num-images", "4", "--quiet"]) == 0
    for name in sorted((short / "images").iterdir()):
        assert name.read_bytes() == (out / "images" / name.name).read_bytes()
    other = tmp_path / "other"
    assert main(["generate", str(path), "--out", str(other), "--num-images", "2", "--seed", "99", "--quiet"]) == 0
    assert (other / "images" / "000000001.png").read_bytes() != (out / "images" / "000000001.png").read_bytes()


def test_polygon_output(write_config, tmp_path):
    path = write_config(small_config(num_images=4, output={"segmentation": "polygon"}))
    assert main(["generate", str(path), "--out", str(tmp_path / "poly"), "--quiet"]) == 0
    data = check_coco_labels(tmp_path / "poly" / "annotations.json")
    assert any(isinstance(a["segmentation"], list) for a in data["annotations"])


def test_refuses_other_config_in_same_dir(write_config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", str(write_config(small_config(num_images=2))), "--out", str(out), "--quiet"]) == 0
    other = write_config(small_config(num_images=2, seed=5), "other.yaml")
    assert main(["generate", str(other), "--out", str(out), "--quiet"]) == 2
    assert "different config" in capsys.readouterr().err
    assert main(["generate", str(other), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert json.loads((out / "annotations.json").read_text())["info"]["seed"] == 5


def test_unreadable_background_image_is_a_clear_error(write_config, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((50, 70, 3), 120, np.uint8)).save(photos / "good.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    scene = {"background": {"kind": "images", "images": str(photos)},
             "defects": [{"kind": "pit", "category": "pit"}]}
    path = write_config(small_config(scene=scene))
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "cannot read image" in err and err.count("\n") == 1
    assert not out.exists()


def _truncated_jpeg(path, rng):
    """A JPEG whose header reads (Pillow's verify passes) but whose pixels stop half-way."""
    import io

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


@pytest.mark.parametrize("broken", ["background", "region"])
def test_a_truncated_background_or_region_fails_validate_and_writes_nothing(write_config, tmp_path, capsys, broken):
    """Found by tools/fuzz.py: validate said ok, and generate failed at the image that drew the file,
    with the output half-made. Every background and region is decoded once before anything is written."""
    rng = np.random.default_rng(0)
    photos, regions = tmp_path / "photos", tmp_path / "regions"
    photos.mkdir(), regions.mkdir()
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photos / f"p{k}.jpg", quality=90)
        Image.fromarray(np.full((60, 80), 255, np.uint8)).save(regions / f"p{k}.jpg", quality=90)
    bad = (photos if broken == "background" else regions) / "p2.jpg"
    _truncated_jpeg(bad, rng)
    scene = {"background": {"kind": "images", "images": str(photos), "regions": str(regions)},
             "defects": [{"kind": "pit", "category": "pit"}]}
    path = write_config(small_config(num_images=4, scene=scene))
    out = tmp_path / "out"
    for argv in (["validate", str(path)], ["generate", str(path), "--out", str(out), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {bad}: cannot read image") and err.count("\n") == 1, err
    assert not out.exists()


def test_16_bit_greyscale_background_is_scaled_not_saturated(write_config, tmp_path):
    """A 16-bit inspection-camera frame spread over 0..65535 keeps its brightness (it came out of
    mean 254 of 255 when the reader clipped to 8 bits)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    values = np.random.default_rng(0).integers(0, 65536, (160, 160)).astype(np.uint16)
    Image.fromarray(values).save(photos / "frame.png")
    scene = {"background": {"kind": "images", "images": str(photos)},
             "defects": [{"kind": "pit", "category": "pit", "count": [1, 1]}]}
    path = write_config(small_config(num_images=3, scene=scene, image={"width": 128, "height": 128, "format": "png"}))
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    for image in sorted((out / "images").iterdir()):
        assert abs(np.asarray(Image.open(image)).mean() - values.mean() / 257) < 4


def test_real_background_images_with_region(write_config, tmp_path):
    photos, regions = tmp_path / "photos", tmp_path / "regions"
    photos.mkdir(), regions.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(90, 160, (150, 200, 3), dtype=np.uint8)).save(photos / f"part{k}.png")
        region = np.zeros((150, 200), np.uint8)
        region[30:120, 40:160] = 255
        Image.fromarray(region).save(regions / f"part{k}.png")
    scene = {"background": {"kind": "images", "images": str(photos / "*.png"), "regions": str(regions), "crop": [1, 1], "flip": False},
             "defects": [{"kind": "pit", "category": "pit", "count": [2, 4]}, {"kind": "stain", "category": "stain", "count": [1, 2]}]}
    path = write_config(small_config(num_images=6, scene=scene, image={"width": 100, "height": 75, "format": "png"}))
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    data = check_coco_labels(out / "annotations.json")
    assert data["annotations"]
    # with crop 1 and no flip the region maps to a fixed window of the output: every box lies inside it
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert x >= 19 and y >= 14 and x + w <= 81 and y + h <= 61, a["bbox"]


def test_region_masks_are_found_by_name_whatever_characters_it_holds(write_config, tmp_path):
    # names with glob characters, a mask under another suffix, a missing folder: a clear error, no traceback
    photos, regions = tmp_path / "photos", tmp_path / "regions"
    photos.mkdir(), regions.mkdir()
    rng = np.random.default_rng(0)
    names = ["part[1]", "part*2", "part?3"]
    for k, name in enumerate(names):
        Image.fromarray(rng.integers(90, 160, (60, 80, 3), dtype=np.uint8)).save(photos / f"{name}.png")
        region = np.zeros((60, 80), np.uint8)
        region[:, :40] = 255  # the left half of each photo
        Image.fromarray(region).save(regions / f"{name}.{'png' if k else 'jpg'}")
    scene = {"background": {"kind": "images", "images": str(photos), "regions": str(regions), "crop": [1, 1], "flip": False},
             "defects": [{"kind": "pit", "category": "pit", "count": [2, 3]}]}
    path = write_config(small_config(num_images=4, scene=scene, image={"width": 80, "height": 60, "format": "png"}))
    out = tmp_path / "out"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    data = check_coco_labels(out / "annotations.json")
    assert data["annotations"]
    assert all(a["bbox"][0] + a["bbox"][2] <= 40 for a in data["annotations"])  # inside the left half
    (regions / "part?3.png").unlink()
    assert main(["validate", str(path)]) == 2
    scene["background"]["regions"] = str(tmp_path / "nowhere")
    path = write_config(small_config(num_images=4, scene=scene, image={"width": 80, "height": 60, "format": "png"}))
    assert main(["validate", str(path)]) == 2


def test_the_background_check_shows_a_bar_on_large_folders_unless_quiet(write_config, tmp_path, capfd):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(200):  # the bar's threshold
        Image.fromarray(np.full((8, 8, 3), k, np.uint8)).save(photos / f"p{k:03d}.png")
    scene = {"background": {"kind": "images", "images": str(photos)},
             "defects": [{"kind": "pit", "category": "pit", "count": [1, 1]}]}
    path = write_config(small_config(num_images=2, scene=scene, image={"width": 32, "height": 32, "format": "png"}))
    assert main(["generate", str(path), "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "checking backgrounds" not in capfd.readouterr().err
    assert main(["generate", str(path), "--out", str(tmp_path / "loud")]) == 0
    assert "checking backgrounds" in capfd.readouterr().err


def test_augment_section_writes_copies_with_exact_labels(write_config, tmp_path):
    pipeline = {"__version__": "2.0.8", "transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [
        {"__class_fullname__": "Affine", "p": 1.0, "rotate": [-30, 30], "scale": [0.8, 1.2]},
        {"__class_fullname__": "RandomBrightnessContrast", "p": 1.0}]}}
    augment = {"pipeline": pipeline, "copies": 2, "keep_originals": True,
               "copy_paste": {"probability": 1.0, "count": [1, 2]}}
    path = write_config(small_config(num_images=4, augment=augment))
    out, again = tmp_path / "out", tmp_path / "again"
    assert main(["generate", str(path), "--out", str(out), "--quiet"]) == 0
    data = check_coco_labels(out / "annotations.json")
    assert [im["id"] for im in data["images"]] == list(range(1, 13))  # 4 samples × (original + 2 copies)
    stages = [im.get("stages") for im in data["images"]]
    assert stages[0::3] == [None] * 4 and all("augment" in s for s in stages[1::3] + stages[2::3])
    assert coco_self_eval(out / "annotations.json", "segm") == pytest.approx(1.0)
    plain = tmp_path / "plain"
    assert main(["generate", str(write_config(small_config(num_images=4), "plain.yaml")), "--out", str(plain), "--quiet"]) == 0
    for k in range(4):  # the kept originals are the plain samples
        original = out / "images" / f"{3 * k + 1:09d}.png"
        assert original.read_bytes() == (plain / "images" / f"{k + 1:09d}.png").read_bytes()
    assert main(["generate", str(path), "--out", str(again), "--quiet"]) == 0
    assert digest(again) == digest(out)


def test_preview_command_redraws_the_generated_preview(surface_run, tmp_path):
    _, out = surface_run
    png = tmp_path / "grid.png"
    assert main(["preview", str(out), "--out", str(png)]) == 0
    assert png.read_bytes() == (out / "previews" / "grid.png").read_bytes()
    grid = np.asarray(Image.open(png))
    assert grid.shape[0] > 256 and grid.std() > 10  # tiles drawn, not a blank canvas
