import numpy as np
import pytest
from PIL import Image

from helpers import REPO, check_coco_labels, small_config
from vision_synth.cli import main
from vision_synth.config import ColorJitter, ObjectSpec, BlendSpec
from vision_synth.errors import DatasetError
from vision_synth.scene.objects import Cutout, load_coco_crops, load_sprite_folder, object_layer

SPRITES = REPO / "scenes" / "tabletop_objects" / "sprites"


def spec(**changes):
    data = {"category": "ball", "source": {"kind": "sprites", "path": "x"}, "scale": [0.5, 0.5]}
    data.update(changes)
    return ObjectSpec.model_validate(data)


def test_sprites_load_trimmed_with_alpha():
    cutouts = load_sprite_folder(SPRITES / "mug")
    assert len(cutouts) == 3
    for c in cutouts:
        assert c.rgb.shape[:2] == c.alpha.shape and c.alpha.max() == 1.0
        assert (c.alpha[0] >= 0.5).any() and (c.alpha[:, -1] >= 0.5).any()  # trimmed to the shape


def test_sprite_without_alpha_is_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(DatasetError, match="flat.png: sprite has no alpha"):
        load_sprite_folder(tmp_path)


@pytest.mark.parametrize("mode", ["hard", "feather", "poisson"])
def test_object_layer_scale_and_blend(mode):
    cutouts = load_sprite_folder(SPRITES / "ball")
    rng = np.random.default_rng(0)
    layer = object_layer(cutouts, spec(), BlendSpec(mode=mode), rng, (200, 300), 1)
    extent = max(np.ptp(np.nonzero(layer.mask)[0]), np.ptp(np.nonzero(layer.mask)[1])) + 1
    assert abs(extent - 100) <= 3  # longest side = 0.5 × shorter image side
    if mode != "feather":
        assert set(np.unique(layer.alpha)) <= {0.0, 1.0}
    else:
        assert ((layer.alpha > 0) & (layer.alpha < 1)).any()
    assert layer.blend == ("poisson" if mode == "poisson" else "alpha")


def test_color_jitter_changes_colours_not_shape():
    cutouts = load_sprite_folder(SPRITES / "cube")
    plain = object_layer(cutouts, spec(), BlendSpec(mode="hard"), np.random.default_rng(1), (100, 100), 1)
    jitter = ColorJitter(brightness=[0.5, 0.5], hue=[90, 90])
    tinted = object_layer(cutouts, spec(color_jitter=jitter), BlendSpec(mode="hard"), np.random.default_rng(1), (100, 100), 1)
    assert np.array_equal(plain.alpha, tinted.alpha)
    under = np.zeros(plain.alpha.shape + (3,), np.float32)
    assert not np.allclose(plain.render(under), tinted.render(under))


def test_coco_crops_as_object_source(coco_dataset, write_config, tmp_path):
    ann, images, samples = coco_dataset
    crops = load_coco_crops(ann, images, "class1")
    n_class1 = sum(int((s.instances.category_ids == 1).sum()) for s in samples)
    assert len(crops) == n_class1
    scene = {"objects": [{"category": "part", "count": [2, 3], "scale": [0.2, 0.4],
                          "source": {"kind": "coco", "annotations": str(ann), "images": str(images), "category": "class1"}}]}
    path = write_config(small_config(num_images=4, scene=scene))
    assert main(["generate", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    data = check_coco_labels(tmp_path / "out" / "annotations.json")
    assert data["annotations"] and {c["name"] for c in data["categories"]} == {"part"}


def test_coco_source_with_unknown_category_is_refused(coco_dataset):
    ann, images, _ = coco_dataset
    with pytest.raises(DatasetError, match="no category named 'dog'"):
        load_coco_crops(ann, images, "dog")


def test_large_crop_shrunk_far_is_not_aliased():
    """A 1-pixel checkerboard shrunk 8× must come out an even grey: it is warped from a level
    halved with INTER_AREA, not sampled bilinearly at full size (which would keep whole squares)."""
    yy, xx = np.mgrid[:128, :128]
    rgb = np.repeat((((yy + xx) % 2) * 255.0)[..., None], 3, axis=2).astype(np.float32)
    cutouts = [Cutout(rgb, np.ones((128, 128), np.float32), "checker")]
    layer = object_layer(cutouts, spec(scale=[0.16, 0.16], flip=False), BlendSpec(mode="hard"),
                         np.random.default_rng(0), (100, 100), 1)
    assert abs(max(layer.shape) - 16) <= 1
    inner = layer.offset[2:-2, 2:-2]
    assert abs(float(inner.mean()) - 127.5) < 10 and float(inner.std()) < 10


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_feathered_edge_keeps_the_object_colour(angle):
    """Transparent pixels of a sprite may hold any colour (here black); none of it may reach the
    soft edge of a feathered paste: every pixel the layer touches has the disc's colour."""
    yy, xx = np.mgrid[:40, :40]
    alpha = ((yy - 19.5) ** 2 + (xx - 19.5) ** 2 <= 18**2).astype(np.float32)
    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[alpha > 0] = (250.0, 240.0, 230.0)
    cutouts = [Cutout(rgb, alpha, "disc")]
    layer = object_layer(cutouts, spec(scale=[0.3, 0.3], rotation=[angle, angle]), BlendSpec(mode="feather", feather=2.0),
                         np.random.default_rng(0), (200, 200), 1)
    touched = layer.alpha > 0
    assert ((layer.alpha > 0) & (layer.alpha < 0.5)).any()  # there is a soft edge
    assert np.allclose(layer.offset[touched], (250.0, 240.0, 230.0), atol=0.5)


def test_cutout_shrunk_below_a_pixel_keeps_one():
    cutouts = [Cutout(np.full((64, 64, 3), 200.0, np.float32), np.ones((64, 64), np.float32), "square")]
    layer = object_layer(cutouts, spec(scale=[0.001, 0.001]), BlendSpec(mode="hard"), np.random.default_rng(0), (100, 100), 1)
    assert layer.mask.sum() >= 1 and max(layer.shape) <= 2


def test_a_vanishing_scale_with_a_feathered_edge_is_a_small_layer():
    """Widening the source margin for the feather at a factor of 1e-9 asked for exabytes (found by
    tools/fuzz.py): an object is drawn at least a pixel long, so the margin stays small."""
    cutouts = [Cutout(np.full((64, 64, 3), 200.0, np.float32), np.ones((64, 64), np.float32), "square")]
    layer = object_layer(cutouts, spec(scale=[1e-9, 1e-9]), BlendSpec(mode="feather", feather=20.0),
                         np.random.default_rng(0), (48, 48), 1)
    assert layer.mask.sum() >= 1 and max(layer.shape) <= 2 * 60 + 4
