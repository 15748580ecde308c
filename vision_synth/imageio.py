"""Reading and writing images: the one decoder every room uses, and the one encoder.

`read_image` turns any file Pillow opens into 8-bit pixels as a viewer shows them:
- EXIF orientation applied (a photo taken upright comes out upright);
- 16-bit greyscale and 16-bit RGB(A) scaled by the type's range, v × 255 / 65535 rounded (Pillow
  alone clips 16-bit greyscale to 255 and drops the low byte of 16-bit RGB); 32-bit integer
  greyscale by its range 0..2³¹−1 (negative values are 0), 32-bit float greyscale by 0..1;
  `stretch=(low, high)` instead maps those percentiles of the image's values to 0 and 255, for
  sensors that fill a few bits of a wide type (12-bit data in 16 bits);
- palette, CMYK, LA and the other 8-bit modes converted by Pillow; alpha kept for mode "RGBA"
  (transparency of palette images included) and dropped for "RGB" and "L";
- decompression bombs (Pillow's MAX_IMAGE_PIXELS), truncated and unreadable files refused with one
  line naming the file.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vision_synth.errors import DatasetError
from vision_synth.files import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_SUFFIX = {"jpeg": "jpg", "png": "png"}
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning,
                cv2.error)
_ORIENTATION = 0x0112  # the EXIF tag

# where Pillow's own conversion to 8 bits would lose information: greyscale wider than 8 bits
_WIDE_GREY = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 2.0**31 - 1, "F": 1.0}


def orient(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """`pixels` (H×W or H×W×C) turned upright for an EXIF orientation (1..8; others leave it)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


def to_8bit(values: np.ndarray, full_scale: float, stretch: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 of `values` scaled so that 0..`full_scale` becomes 0..255 (rounded, clipped), or with
    `stretch` = (low, high) percentiles, so that those percentiles become 0 and 255."""
    values = np.asarray(values, np.float64)
    low, high = 0.0, float(full_scale)
    if stretch is not None:
        low, high = (float(v) for v in np.percentile(values, stretch))
        if high <= low:
            high = low + 1.0
    return np.clip(np.rint((values - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


def _bits16_rgb(im: Image.Image) -> bool:
    """Pillow reads 16-bit RGB(A) PNG and TIFF as 8-bit modes; its raw mode tells (e.g. 'RGB;16B')."""
    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return False
    args = im.tile[0].args
    raw = args[0] if isinstance(args, tuple) else args
    return isinstance(raw, str) and ";16" in raw


@contextlib.contextmanager
def _opened(path: Path):
    """Image.open with Pillow's decompression-bomb warning (between MAX_IMAGE_PIXELS and twice that)
    raised as the error it is above: a file past the limit is refused, not read with a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            yield im


def _decode(path: Path, mode: str, stretch: tuple[float, float] | None) -> np.ndarray:
    with _opened(path) as im:
        orientation = im.getexif().get(_ORIENTATION)
        if im.mode in _WIDE_GREY:
            grey = to_8bit(np.asarray(im), _WIDE_GREY[im.mode], stretch)
            pixels = np.asarray(Image.fromarray(grey, "L").convert(mode))
        elif _bits16_rgb(im):
            wide = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # BGR(A) uint16, no orientation applied
            if wide is None or wide.dtype != np.uint16 or wide.ndim != 3:
                raise ValueError("cannot decode its 16-bit colour")
            rgb = cv2.cvtColor(wide, cv2.COLOR_BGRA2RGBA if wide.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            pixels = np.asarray(Image.fromarray(to_8bit(rgb, 65535.0, stretch)).convert(mode))
        else:
            pixels = np.asarray(im.convert(mode))
    return np.ascontiguousarray(orient(pixels, orientation))


def read_image(path: Path, mode: str = "RGB", stretch: tuple[float, float] | None = None) -> np.ndarray:
    """An image file as uint8 pixels (H×W×3 for "RGB", H×W×4 for "RGBA", H×W for "L"), upright and
    scaled to 8 bits as the module says; a DatasetError naming the file when it cannot be read."""
    try:
        return _decode(Path(path), mode, stretch)
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def has_alpha(path: Path) -> bool:
    """Whether the file holds an alpha channel or a transparent colour (read from its header)."""
    try:
        with _opened(path) as im:
            return "A" in im.getbands() or "transparency" in im.info
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def check_image(path: Path) -> None:
    """Fail now, naming the file, if an image cannot be opened (before anything is written)."""
    try:
        with _opened(path) as im:
            im.verify()
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def encode_image(image: np.ndarray, fmt: str, quality: int = 92, png_compression: int | None = 3) -> bytes:
    """The bytes of an RGB (or, for PNG, RGBA) uint8 image as JPEG (at `quality`) or PNG (at
    `png_compression`, None for OpenCV's default)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[-1] == 4 else cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        params = [] if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
        ok, buf = cv2.imencode(".png", bgr, params)
    if not ok:
        raise RuntimeError(f"could not encode a {fmt} image")
    return buf.tobytes()


def write_image(path: Path, image: np.ndarray, fmt: str, quality: int = 92, png_compression: int | None = 3) -> None:
    """`image` encoded (see `encode_image`) and written atomically to `path`."""
    write_atomic(path, encode_image(image, fmt, quality, png_compression))
