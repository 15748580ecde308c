"""vision_synth.imageio: every image mode read to the 8-bit pixels it stands for, upright; bad files
refused with one line naming them; writes atomic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from vision_synth.errors import DatasetError
from vision_synth.imageio import check_image, encode_image, has_alpha, orient, read_image, to_8bit, write_image

# a ramp over the whole 16-bit range: 0, 257, ..., 65535 → exactly 0, 1, ..., 255 in 8 bits
RAMP16 = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)
RAMP8 = np.arange(256, dtype=np.uint8).reshape(16, 16)


def test_16_bit_greyscale_is_scaled_by_the_range_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(read_image(path, "L"), RAMP8)
    rgb = read_image(path)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.repeat(RAMP8[..., None], 3, axis=2))


def test_16_bit_values_round_to_the_nearest_8_bit_level(tmp_path):
    values = np.array([[0, 128, 129, 385, 65407, 65535]], np.uint16)  # 128/257 < .5 < 129/257
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert read_image(path, "L").tolist() == [[0, 0, 1, 1, 255, 255]]


def test_a_16_bit_background_across_the_range_keeps_its_mean(tmp_path):
    """The reported bug: values spread over 0..65535 came out of mean 254 of 255."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (128, 128)).astype(np.uint16)
    path = tmp_path / "wide.png"
    Image.fromarray(values).save(path)
    assert abs(read_image(path).mean() - values.mean() / 257) < 0.6


def test_16_bit_rgb_keeps_every_channel_scaled(tmp_path):
    rgb16 = np.stack([RAMP16, RAMP16[::-1], np.full_like(RAMP16, 32896)], axis=-1)  # 32896 = 128 × 257
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[..., ::-1])  # OpenCV writes BGR
    expected = np.stack([RAMP8, RAMP8[::-1], np.full_like(RAMP8, 128)], axis=-1)
    np.testing.assert_array_equal(read_image(path), expected)


def test_16_bit_rgba_keeps_its_alpha(tmp_path):
    rgba16 = np.stack([RAMP16, RAMP16, RAMP16, RAMP16[::-1]], axis=-1)
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), rgba16[..., [2, 1, 0, 3]])
    out = read_image(path, "RGBA")
    np.testing.assert_array_equal(out[..., 0], RAMP8)
    np.testing.assert_array_equal(out[..., 3], RAMP8[::-1])


def test_32_bit_integer_and_float_greyscale_by_their_range(tmp_path):
    ints = tmp_path / "i32.tif"
    Image.fromarray(np.array([[0, 2**30, 2**31 - 1, -5]], np.int32)).save(ints)
    assert Image.open(ints).mode == "I"
    assert read_image(ints, "L").tolist() == [[0, 128, 255, 0]]
    floats = tmp_path / "f32.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], np.float32)).save(floats)
    assert Image.open(floats).mode == "F"
    assert read_image(floats, "L").tolist() == [[0, 128, 255, 255, 0]]


def test_percentile_stretch_fills_the_8_bits_for_narrow_data(tmp_path):
    twelve_bit = (np.arange(256, dtype=np.uint16) * 16).reshape(16, 16)  # 0..4080 of 65535
    path = tmp_path / "g12.png"
    Image.fromarray(twelve_bit).save(path)
    assert read_image(path, "L").max() == 16  # by the type's range: dark, as stored
    stretched = read_image(path, "L", stretch=(0, 100))
    assert stretched.min() == 0 and stretched.max() == 255
    np.testing.assert_array_equal(stretched, RAMP8)


def test_to_8bit_with_a_flat_image_does_not_divide_by_zero():
    assert to_8bit(np.full((2, 2), 7.0), 65535.0, stretch=(1, 99)).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    out = read_image(path)
    np.testing.assert_array_equal(out, expected)
    assert out.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))
    if orientation == 6:  # the camera turned clockwise: the first column becomes the first row
        np.testing.assert_array_equal(out[0], pixels[::-1, 0])


def test_orient_leaves_an_upright_image_as_it_is():
    a = np.arange(6).reshape(2, 3)
    assert orient(a, 1) is a and orient(a, None) is a


def test_8_bit_modes_as_pillow_converts_them(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    palette = tmp_path / "p.png"
    Image.fromarray(rgb).convert("P").save(palette)
    np.testing.assert_array_equal(read_image(palette), np.asarray(Image.open(palette).convert("RGB")))
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk)
    assert read_image(cmyk).shape == (8, 8, 3)
    la = tmp_path / "la.png"
    Image.fromarray(np.dstack([RAMP8, RAMP8[::-1]]), "LA").save(la)
    out = read_image(la, "RGBA")
    np.testing.assert_array_equal(out[..., 0], RAMP8)
    np.testing.assert_array_equal(out[..., 3], RAMP8[::-1])
    assert has_alpha(la) and not has_alpha(cmyk)


def test_alpha_is_kept_for_rgba_and_dropped_for_rgb(tmp_path):
    rgba = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 50, np.uint8)])
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    np.testing.assert_array_equal(read_image(path, "RGBA"), rgba)
    np.testing.assert_array_equal(read_image(path), rgba[..., :3])
    assert has_alpha(path)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"bad.png: cannot read image"):
        read_image(path)


def test_truncated_and_bomb_images_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DatasetError, match="cut.png: cannot read image"):
        read_image(truncated)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # 4× over: Pillow's bomb error
    with pytest.raises(DatasetError, match="big.png: cannot read image"):
        read_image(path)


@pytest.mark.parametrize("reader", [read_image, has_alpha, check_image])
def test_an_image_just_over_the_pixel_limit_is_refused_not_read_with_a_warning(tmp_path, monkeypatch, recwarn, reader):
    """Between MAX_IMAGE_PIXELS and twice that Pillow only warns (two lines on stderr, then reads it):
    the file is refused like any bomb, in one line (found by tools/fuzz.py)."""
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 * 2 // 3)  # 1.5× over: Pillow's warning only
    with pytest.raises(DatasetError, match=r"big.png: cannot read image \(Image size \(4096 pixels\) exceeds limit"):
        reader(path)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_write_image_round_trips_and_leaves_no_temp_file(tmp_path, fmt):
    y, x = np.mgrid[0:16, 0:24]
    image = np.stack([x * 10, y * 15, np.full_like(x, 90)], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it
    path = tmp_path / "sub" / f"x.{fmt}"
    write_image(path, image, fmt, quality=100)
    assert path.read_bytes() == encode_image(image, fmt, 100)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    back = read_image(path)
    if fmt == "png":
        np.testing.assert_array_equal(back, image)
    else:
        assert np.abs(back.astype(int) - image).mean() < 3


def test_encode_image_writes_rgba_png():
    rgba = np.random.default_rng(3).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_image(rgba, "png"), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[..., [2, 1, 0, 3]], rgba)
