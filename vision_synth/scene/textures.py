"""Seeded procedural backgrounds: brushed metal, cast metal, wood, woven fabric, painted plastic.

Every texture is a scalar *field* in [0, 1] mapped onto a two-colour *ramp*. `make_texture` draws
both for one image; the texture bank (`scene/texture_bank.py`) draws the fields once per process
and each image its own crop, ramp and lighting. Feature sizes (ring spacing, noise cells) follow
the image's size, not the field's, so a field drawn larger than the image is the same texture,
only more of it. To stay within a couple of milliseconds at 512×512, noise is drawn on small grids
and upsampled with cv2, and oriented patterns (streaks, grain, weave) are built once in their own
axes on a small source array and rotated into place with a single `cv2.warpAffine`.
"""

from __future__ import annotations

import colorsys
import functools
import math
from typing import Callable

import cv2
import numpy as np

from vision_synth.spec import uniform

TEXTURES: tuple[str, ...] = ("brushed_metal", "cast_metal", "wood", "fabric", "painted")

Ramp = tuple[np.ndarray, np.ndarray]  # (dark, light): RGB colours, 0..255 float32


def make_texture(name: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An H×W×3 uint8 RGB image of texture `name`; all randomness comes from `rng`."""
    field = texture_field(name, rng, (height, width), (height, width))
    if name == "painted":  # its shading (gradient, vignette) is part of every painted image
        field *= painted_light(rng, int(height), int(width))
    return _colorize(field, *texture_ramp(name, rng))


def texture_field(name: str, rng: np.random.Generator, size: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The field of texture `name` (float32, `size` = rows, cols; values about [0, 1], clipped when
    coloured) with the feature sizes of an image of `image_hw`; painted's without its shading."""
    texture_index(name)
    if min(size) < 1 or min(image_hw) < 1:
        raise ValueError(f"texture size must be positive, got {size[0]}×{size[1]}")
    return _FIELDS[name](rng, int(size[0]), int(size[1]), (int(image_hw[0]), int(image_hw[1])))


def texture_index(name: str) -> int:
    """The place of `name` in TEXTURES (an error naming the known ones when it is not there)."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; expected one of {', '.join(TEXTURES)}")
    return TEXTURES.index(name)


def texture_ramp(name: str, rng: np.random.Generator) -> Ramp:
    """The (dark, light) colours of one image of texture `name`."""
    return _RAMPS[name](rng)


# ---------------------------------------------------------------- building blocks

_UNIT = math.sqrt(12.0)  # scales a centred uniform draw to unit variance


def _noise(rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int], cubic: bool = False) -> np.ndarray:
    """Unit-variance value noise on a `grid` (rows, cols) upsampled to `size` (rows, cols), float32.

    Uniform draws are used, not normal ones: four times cheaper and alike once smoothed.
    """
    small = rng.random((max(2, grid[0]), max(2, grid[1])), dtype=np.float32)
    small -= 0.5
    small *= _UNIT
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.resize(small, (size[1], size[0]), interpolation=interp)


def _cells(extent: float, cell: float) -> int:
    """Grid points needed to cover `extent` pixels with cells of `cell` pixels."""
    return max(2, int(math.ceil(extent / cell)) + 1)


def _oriented_frame(height: int, width: int, angle: float, step_u: float, step_v: float) -> tuple[int, int]:
    """Source size (rows along v, cols along u) that covers the image when u points at `angle`.

    u runs along `angle` sampled every `step_u` pixels, v across it every `step_v` pixels; two
    samples of margin on each side keep every bilinear lookup inside the source.
    """
    c, s = abs(math.cos(angle)), abs(math.sin(angle))
    along, across = width * c + height * s, width * s + height * c
    return int(math.ceil(across / step_v)) + 4, int(math.ceil(along / step_u)) + 4


def _rotate_into_image(source: np.ndarray, height: int, width: int, angle: float, step_u: float, step_v: float,
                       reduce: int = 1) -> np.ndarray:
    """Sample `source` (rows v, cols u, centred on the image centre) onto the H×W image.

    The source covers the whole image (see `_oriented_frame`), so the border mode is never used
    and OpenCV stays on its fast path. `reduce` > 1 samples a grid `reduce` times coarser and
    upsamples it bilinearly (for smooth fields only: exact where the field is linear, and 16×
    fewer warped pixels at 4).
    """
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cu, cv = (source.shape[1] - 1) / 2.0, (source.shape[0] - 1) / 2.0
    m = np.array(
        [
            [c / step_u, s / step_u, cu - (cx * c + cy * s) / step_u],
            [-s / step_v, c / step_v, cv - (-cx * s + cy * c) / step_v],
        ],
        np.float64,
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if reduce <= 1:
        return cv2.warpAffine(source, m, (width, height), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    # coarse pixel j sits where cv2.resize will read it: image x = (j + 0.5)·(W / w) − 0.5
    small_w, small_h = max(2, -(-width // reduce)), max(2, -(-height // reduce))
    sx, sy = width / small_w, height / small_h
    m = m @ np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    small = cv2.warpAffine(source, m, (small_w, small_h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _uneven(rng: np.random.Generator, field: np.ndarray, cell: float, amount: float, scale: float = 1.0) -> np.ndarray:
    """`field` (any depth) × scale × (1 + amount × smooth noise of `cell`-pixel cells), as float32."""
    height, width = field.shape
    gain = _noise(rng, (_cells(height, cell), _cells(width, cell)), (height, width))
    gain *= amount * scale
    gain += scale
    return cv2.multiply(field, gain, dtype=cv2.CV_32F)


def _colorize(field: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Map a float32 field in [0, 1] linearly from `dark` to `light` (RGB 0..255): H×W×3 uint8."""
    field = np.clip(field, 0.0, 1.0, out=field)
    # per channel |a·x + b| saturated to uint8; a·x + b stays between dark and light, so never negative
    channels = [cv2.convertScaleAbs(field, alpha=float(hi - lo), beta=float(lo)) for lo, hi in zip(dark, light)]
    return cv2.merge(channels)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour (0..255, float32) from hue in degrees, saturation and value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb((h % 360.0) / 360.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([r, g, b], np.float32) * 255.0


# ---------------------------------------------------------------- lighting


def lighting(rng: np.random.Generator, height: int, width: int, gradient: tuple[float, float],
             vignette: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The smooth gain of an H×W image, 1 + g·(x cos φ + y sin φ) − v·(x² + y²) with x and y in
    [−1, 1] along the longer side, φ uniform, g and v drawn from `gradient` and `vignette`; as its
    two separable terms (float32), `rows` (H) and `cols` (W): gain[i, j] = rows[i] + cols[j]."""
    y, x = _light_axes(int(height), int(width))
    direction = uniform(rng, (0.0, 2 * math.pi))
    # drawn even from a single-value range (spec.uniform would not draw): the stream stays where it was
    g = float(rng.uniform(*gradient))
    v = float(rng.uniform(*vignette))
    rows = y * np.float32(g * math.sin(direction)) - (y * y) * np.float32(v) + np.float32(1.0)
    cols = x * np.float32(g * math.cos(direction)) - (x * x) * np.float32(v)
    return rows, cols


@functools.lru_cache(maxsize=16)
def _light_axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixel centres' y (H) and x (W) in [−1, 1] along the longer side (float32, read-only)."""
    longer = max(height, width)
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32) * np.float32(height / longer)
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32) * np.float32(width / longer)
    for a in (x, y):
        a.flags.writeable = False
    return y, x


# painted parts are lit unevenly by construction: a gradient and a vignette of their 0.78 base shade
PAINTED_LIGHT = ((0.05 / 0.78, 0.25 / 0.78), (0.05 / 0.78, 0.3 / 0.78))


def painted_light(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The H×W gain (float32) of a painted surface's gradient and vignette."""
    rows, cols = lighting(rng, height, width, *PAINTED_LIGHT)
    return np.add.outer(rows, cols)


# ---------------------------------------------------------------- fields and ramps
# A field maker takes (rng, rows, cols, image_hw): the field's own size, and the size of the image
# whose feature scale it has.


def _brushed_metal(rng: np.random.Generator, height: int, width: int, image_hw: tuple[int, int]) -> np.ndarray:
    angle = uniform(rng, (0.0, math.pi))
    step_u, step_v = 8.0, uniform(rng, (0.8, 1.4))  # u along the brushing, v across (streak pitch)
    rows, cols = _oriented_frame(height, width, angle, step_u, step_v)
    along_px = cols * step_u
    streak = uniform(rng, (30.0, 120.0))  # typical streak length in pixels
    source = _noise(rng, (rows, _cells(along_px, streak)), (rows, cols))
    source *= 0.06
    coarse = _noise(rng, (_cells(rows, 6.0), _cells(along_px, streak * 3)), (rows, cols))
    cv2.scaleAdd(coarse, 0.05, source, dst=source)
    # anisotropic reflection: a soft highlight band across the streaks, i.e. varying along u, once
    # per image extent along u (so a field larger than the image has one per image-sized stretch)
    extent = image_hw[1] * abs(math.cos(angle)) + image_hw[0] * abs(math.sin(angle))
    u = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2.0) * np.float32(step_u / extent)
    centre, spread = uniform(rng, (-0.35, 0.35)), uniform(rng, (0.12, 0.35))
    offset = u - centre
    offset -= np.round(offset)  # wrapped into [−0.5, 0.5]
    band = uniform(rng, (0.08, 0.22)) * np.exp(-((offset / spread) ** 2))
    source += (band + (0.5 - 0.5 * float(band[np.abs(u) <= 0.5].mean())))[None, :]
    return _rotate_into_image(source, height, width, angle, step_u, step_v)


def _brushed_metal_ramp(rng: np.random.Generator) -> Ramp:
    grey = uniform(rng, (120.0, 190.0))
    tint = rng.uniform(-6.0, 6.0, 3).astype(np.float32) + uniform(rng, (-6.0, 6.0)) * np.array([-1, 0, 1], np.float32)
    return np.clip(grey * 0.45 + tint, 0, 255), np.clip(grey * 1.45 + tint, 0, 255)


def _cast_metal(rng: np.random.Generator, height: int, width: int, image_hw: tuple[int, int]) -> np.ndarray:
    short = min(image_hw)
    # multi-octave value noise built as a pyramid up to a quarter of the field
    cells = uniform(rng, (3.0, 7.0))
    grid = (max(2, round(cells * height / short)), max(2, round(cells * width / short)))
    field = _noise(rng, grid, grid)
    persistence, amp = uniform(rng, (0.55, 0.75)), 1.0
    target = (max(2, height // 4), max(2, width // 4))
    while field.shape[0] < target[0] or field.shape[1] < target[1]:
        size = (min(field.shape[0] * 2, target[0]), min(field.shape[1] * 2, target[1]))
        size = (max(size[0], field.shape[0]), max(size[1], field.shape[1]))
        amp *= persistence
        field = cv2.resize(field, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        field += amp * _noise(rng, size, size)
    field *= uniform(rng, (0.08, 0.13))
    # small dark pits (about two pixels across): peaks of half-resolution noise above a high
    # threshold; kept faint so they do not pass for the labelled `pit` defect
    half = (max(2, height // 2), max(2, width // 2))
    field = cv2.resize(field, (half[1], half[0]), interpolation=cv2.INTER_LINEAR)
    pits = rng.random(half, dtype=np.float32)
    threshold = uniform(rng, (0.99, 0.997))
    pits -= threshold
    field -= np.clip(pits, 0.0, None, out=pits) * (0.45 / (1.0 - threshold))
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    # sandy grain, and a dark speckle on the top 2/256 of it: the one full-resolution draw
    grain = np.frombuffer(rng.bytes(height * width), np.uint8).reshape(height, width)
    levels = np.arange(256, dtype=np.float32) * (0.2 / 255.0) + 0.4
    levels[254:] -= 0.12
    field += cv2.LUT(grain, levels)
    return field


def _cast_metal_ramp(rng: np.random.Generator) -> Ramp:
    grey = uniform(rng, (90.0, 170.0))
    warm = uniform(rng, (-8.0, 10.0)) * np.array([1.0, 0.3, -1.0], np.float32)
    return np.clip(grey * 0.3 + warm * 0.5, 0, 255), np.clip(grey * 1.7 + warm, 0, 255)


def _ring_profile(rng: np.random.Generator, rings: int) -> np.ndarray:
    """256 brightness levels (uint8) spanning `rings` growth rings: light earlywood, a dark
    latewood band of random width per ring, and fine fibre lines parallel to the rings."""
    per = 256 // rings
    t = (np.arange(256, dtype=np.float32) % per) / per
    ring = np.arange(256) // per
    width = rng.uniform(0.15, 0.45, rings + 1).astype(np.float32)[ring]
    depth = rng.uniform(0.6, 1.0, rings + 1).astype(np.float32)[ring]
    # latewood: a band rising sharply and fading slowly, so rings look asymmetric like real wood
    band = np.clip(1.0 - np.abs(t - (1.0 - width)) / width, 0.0, 1.0) ** 1.5
    fibres = cv2.resize(rng.random((1, rings * 12), dtype=np.float32), (256, 1), interpolation=cv2.INTER_LINEAR)[0]
    levels = 0.8 - 0.5 * depth * band + 0.1 * (fibres - 0.5)
    return np.clip(levels * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _wood(rng: np.random.Generator, height: int, width: int, image_hw: tuple[int, int]) -> np.ndarray:
    angle = uniform(rng, (0.0, math.pi))  # grain direction
    short = min(image_hw)
    period = uniform(rng, (0.02, 0.06)) * max(short, 160)  # ring spacing in pixels
    rings = 3  # rings per cycle of the profile table
    # the ring phase is smooth (distance across the grain plus a warp stretched along the grain),
    # so it is built on a coarse source and interpolated closely enough by one warpAffine
    step = 4.0
    rows, cols = _oriented_frame(height, width, angle, step, step)
    phase = _noise(rng, (_cells(rows * step, short / 2.0), _cells(cols * step, short / 0.7)), (rows, cols), cubic=True)
    phase *= period * uniform(rng, (1.0, 3.0))
    wiggle = _noise(rng, (_cells(rows * step, short / 6.0), _cells(cols * step, short / 2.5)), (rows, cols), cubic=True)
    cv2.scaleAdd(wiggle, period * 0.2, phase, dst=phase)
    phase += np.arange(rows, dtype=np.float32)[:, None] * step
    phase *= 256.0 / (rings * period)
    phase += 256.0 * 64.0  # positive, so truncation to an integer and wrapping to a byte is a modulo
    field = _rotate_into_image(phase, height, width, angle, step, step, reduce=4)  # phase is smooth
    index = field.astype(np.int32).astype(np.uint8)  # integer casts wrap: phase mod 256
    field = cv2.LUT(index, _ring_profile(rng, rings))
    return _uneven(rng, field, short / 5, 0.06, 1.0 / 255.0)


def _wood_ramp(rng: np.random.Generator) -> Ramp:
    hue = uniform(rng, (18.0, 36.0))
    value = uniform(rng, (0.55, 0.9))
    sat = uniform(rng, (0.35, 0.65))
    light = _hsv(hue, sat, value)
    dark = _hsv(hue - uniform(rng, (0.0, 8.0)), sat + 0.2, value * uniform(rng, (0.3, 0.5)))
    return dark, light


# weave repeats: True where the warp (vertical thread) lies on top
_WEAVES = (
    np.array([[1, 0], [0, 1]], bool),  # plain
    np.array([[(i + j) % 4 < 2 for j in range(4)] for i in range(4)], bool),  # 2/2 twill
    np.array([[(3 * i + j) % 5 != 0 for j in range(5)] for i in range(5)], bool),  # satin
)
_THREADS = 20  # threads per tile: a multiple of every weave repeat; variation repeats this often


def _fabric(rng: np.random.Generator, height: int, width: int, image_hw: tuple[int, int]) -> np.ndarray:
    angle = uniform(rng, (0.0, math.pi))
    weave = _WEAVES[(0, 0, 1, 1, 2)[int(rng.integers(5))]]
    pitch = int(rng.integers(3, 9))  # thread width in pixels
    # one tile of _THREADS×_THREADS threads: a lit ridge across each thread, darker where it dives under
    t = (np.arange(pitch, dtype=np.float32) + 0.5) / pitch
    ridge = np.sin(np.pi * t) ** 0.7
    arch = 0.75 + 0.25 * np.sin(np.pi * t)
    reps = _THREADS // weave.shape[0]
    top = np.kron(np.tile(weave, (reps, reps)), np.ones((pitch, pitch), bool))
    warp_threads = np.tile(ridge[None, :] * arch[:, None], (_THREADS, _THREADS))
    weft_threads = np.tile(ridge[:, None] * arch[None, :], (_THREADS, _THREADS))
    # thread-to-thread thickness and dye variation
    warp_threads *= np.repeat(rng.uniform(0.85, 1.1, _THREADS).astype(np.float32), pitch)[None, :]
    weft_threads *= np.repeat(rng.uniform(0.85, 1.1, _THREADS).astype(np.float32), pitch)[:, None]
    weft_threads *= uniform(rng, (0.65, 1.0))
    # float32, not uint8: OpenCV's bilinear warp of a float image is the faster one here
    tile = np.floor(np.where(top, warp_threads, weft_threads) * 220.0 + 0.5).astype(np.float32)
    rows, cols = _oriented_frame(height, width, angle, 1.0, 1.0)
    source = cv2.repeat(tile, -(-rows // tile.shape[0]), -(-cols // tile.shape[1]))
    field = _rotate_into_image(source, height, width, angle, 1.0, 1.0)
    field = _uneven(rng, field, min(image_hw) / 4, 0.1, 0.8 / 220.0)
    field += 0.1
    return field


def _fabric_ramp(rng: np.random.Generator) -> Ramp:
    hue = uniform(rng, (0.0, 360.0))
    sat = uniform(rng, (0.15, 0.75))
    value = uniform(rng, (0.35, 0.95))
    light = _hsv(hue + uniform(rng, (-15.0, 15.0)), sat * uniform(rng, (0.5, 1.0)), value)
    return _hsv(hue, min(1.0, sat * 1.2), value * 0.25), light


_PAINT_HEADROOM = 1.28  # the ramp runs from black to colour × 1.28, read at shade / 1.28


def _painted(rng: np.random.Generator, height: int, width: int, image_hw: tuple[int, int]) -> np.ndarray:
    # everything here is smooth or faint, so it is built at half resolution and upsampled once;
    # the shading (gradient, vignette) is the image's lighting, drawn apart (`painted_light`)
    hh, hw = max(2, (height + 1) // 2), max(2, (width + 1) // 2)
    short = max(2, (min(image_hw) + 1) // 2)
    # slow unevenness, orange peel and a faint grain over the base shade
    shade = 0.02 * _noise(rng, (_cells(hh, short / 3), _cells(hw, short / 3)), (hh, hw))
    shade += 0.012 * _noise(rng, (_cells(hh, 3.0), _cells(hw, 3.0)), (hh, hw))
    shade += (rng.random((hh, hw), dtype=np.float32) - 0.5) * 0.02
    shade += 0.78
    shade = cv2.resize(shade, (width, height), interpolation=cv2.INTER_LINEAR)
    shade *= 1.0 / _PAINT_HEADROOM
    return shade


def _painted_ramp(rng: np.random.Generator) -> Ramp:
    hue = uniform(rng, (0.0, 360.0))
    grey = rng.random() < 0.35  # industrial greys are common
    sat = uniform(rng, (0.0, 0.12) if grey else (0.3, 0.85))
    colour = _hsv(hue, sat, uniform(rng, (0.3, 0.95)))
    # a ramp from black is the colour scaled by the shade (and by the lighting, exactly)
    return np.zeros(3, np.float32), colour * _PAINT_HEADROOM


_FIELDS: dict[str, Callable[[np.random.Generator, int, int, tuple[int, int]], np.ndarray]] = {
    "brushed_metal": _brushed_metal,
    "cast_metal": _cast_metal,
    "wood": _wood,
    "fabric": _fabric,
    "painted": _painted,
}
_RAMPS: dict[str, Callable[[np.random.Generator], Ramp]] = {
    "brushed_metal": _brushed_metal_ramp,
    "cast_metal": _cast_metal_ramp,
    "wood": _wood_ramp,
    "fabric": _fabric_ramp,
    "painted": _painted_ramp,
}
