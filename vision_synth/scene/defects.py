"""Procedural surface defects: each draws its pixels and its exact mask from one local alpha patch.

A generator returns a `Layer` whose `alpha` is cropped tightly around the defect and whose
`render` is an affine change of what lies beneath (`under * gain + offset`, maps of the patch).
Strokes and blobs are rasterised on a 4× supersampled canvas and reduced to per-pixel coverage
(ellipses, for pits and dents, get theirs analytically); alpha is that coverage sharpened around
one half, so the mask (`alpha >= 0.5`) is the set of pixels the defect covers more than half,
and the pixels changed outside it are a faint one-pixel halo.
Sizes are fractions of the image's shorter side `s` unless the field says pixels.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Callable, Literal, Union

import cv2
import numpy as np
from pydantic import Field

from vision_synth import scene  # scene.kernels: imported on first use (see scene/__init__.py)
from vision_synth.scene.layers import Layer
from vision_synth.spec import (
    CountRange,
    NonNegativeScaleRange,
    PixelRange,
    PositiveCountRange,
    ScaleRange,
    Spec,
    UnitRange,
    integer,
    uniform,
)

Tone = Literal["dark", "light", "any"]
Channel = Annotated[int, Field(ge=0, le=255)]
RGB = tuple[Channel, Channel, Channel]


class _DefectSpec(Spec):
    category: str = Field(min_length=1, description="class name the defect is labelled as")
    count: CountRange = Field((0, 2), description="how many per image")


class ScratchSpec(_DefectSpec):
    """A thin curved line, tapered at both ends, lighter or darker than the surface."""

    kind: Literal["scratch"] = "scratch"
    length: ScaleRange = Field((0.15, 0.5), description="end-to-end length, fraction of s")
    width: PixelRange = Field((1.5, 4.0), description="pixels at the widest point")
    curvature: NonNegativeScaleRange = Field((0.0, 0.3), description="Bézier control offset, fraction of length")
    tone: Tone = "any"
    contrast: UnitRange = (0.25, 0.6)


class CrackSpec(_DefectSpec):
    """A thin dark jagged line growing both ways from a point, with side branches."""

    kind: Literal["crack"] = "crack"
    length: ScaleRange = Field((0.1, 0.35), description="trunk length, fraction of s")
    width: PixelRange = Field((1.0, 2.5), description="pixels at the origin, thinning toward the tips")
    branches: CountRange = (0, 3)
    contrast: UnitRange = (0.35, 0.7)


class StainSpec(_DefectSpec):
    """An irregular semi-transparent tinted blob."""

    kind: Literal["stain"] = "stain"
    size: ScaleRange = Field((0.05, 0.15), description="diameter, fraction of s")
    opacity: UnitRange = (0.3, 0.7)
    colors: tuple[RGB, ...] = Field(
        ((110, 75, 40), (60, 55, 50), (190, 160, 80), (150, 85, 45)),
        min_length=1,
        description="RGB tints to choose from",
    )


class PitSpec(_DefectSpec):
    """A small dark hole with its inner wall lit on one side."""

    kind: Literal["pit"] = "pit"
    radius: PixelRange = Field((2.0, 6.0), description="pixels")
    contrast: UnitRange = (0.4, 0.8)


class DentSpec(_DefectSpec):
    """A shallow depression seen only through its shading: darker on one side, lighter on the other."""

    kind: Literal["dent"] = "dent"
    size: ScaleRange = Field((0.04, 0.12), description="diameter, fraction of s")
    contrast: UnitRange = Field((0.15, 0.4), description="strength of the shading (how deep it looks)")


class ParticlesSpec(_DefectSpec):
    """Contamination: a cluster of small dots, labelled as one instance (a multi-part mask)."""

    kind: Literal["particles"] = "particles"
    dots: PositiveCountRange = Field((5, 30), description="dots in the cluster (`count` is clusters per image)")
    spread: ScaleRange = Field((0.02, 0.08), description="cluster radius, fraction of s")
    dot_radius: PixelRange = Field((0.7, 2.0), description="pixels")
    tone: Tone = "any"
    contrast: UnitRange = (0.4, 0.8)


DefectSpec = Annotated[
    Union[ScratchSpec, CrackSpec, StainSpec, PitSpec, DentSpec, ParticlesSpec],
    Field(discriminator="kind"),
]


def make_defect(spec: DefectSpec, rng: np.random.Generator, image_hw: tuple[int, int], category_id: int) -> Layer:
    """One defect drawn from `spec` for an image of `image_hw` (height, width), as a cropped Layer.

    The patch never exceeds the image (a defect too large for it is scaled down to fit), and its
    mask is never empty. All randomness comes from `rng`.
    """
    maker = _MAKERS.get(type(spec))
    if maker is None:
        raise TypeError(f"not a defect spec: {type(spec).__name__}")
    height, width = int(image_hw[0]), int(image_hw[1])
    if height < 8 or width < 8:
        raise ValueError(f"image too small for defects: {height}×{width}")
    alpha, gain, offset = maker(spec, rng, (height, width))
    return Layer(alpha, _channels(gain), _channels(offset), int(category_id), "procedural")


# ---------------------------------------------------------------- rasterising

_SS = 4  # supersampling factor: coverage is counted on a 4×4 sub-pixel grid (`coverage` halves twice)
_SHIFT = 4  # fractional bits of the fixed-point coordinates handed to cv2
_EDGE = 4.0  # alpha = 0.5 + _EDGE·(coverage − 0.5): a steep ramp keeps the halo below 0.5 faint


class _Canvas:
    """A local supersampled canvas covering `bounds` (the least and the greatest x, y of what is
    drawn, in pixels: see `_bounds`) plus `pad` pixels."""

    def __init__(self, bounds: np.ndarray, pad: float) -> None:
        lo = np.floor(bounds[0] - pad)
        hi = np.ceil(bounds[1] + pad)
        self.origin = lo  # (x, y) of the patch's top-left corner in the caller's coordinates
        self.width, self.height = int(hi[0] - lo[0]), int(hi[1] - lo[1])
        self.pixels = np.zeros((self.height * _SS, self.width * _SS), np.uint8)

    def fixed(self, points: np.ndarray) -> np.ndarray:
        """Caller coordinates → cv2 fixed-point coordinates on the supersampled canvas.

        Pixel (i, j) covers [j, j+1)×[i, i+1); cv2 puts sub-pixel k's centre at integer k.
        """
        sub = (points - self.origin) * _SS - 0.5
        return np.round(sub * (1 << _SHIFT)).astype(np.int32)

    def local(self, points: np.ndarray) -> np.ndarray:
        """Caller coordinates → patch pixel coordinates (continuous, corner at 0)."""
        return points - self.origin

    def coverage8(self) -> np.ndarray:
        """Coverage of each patch pixel in 1/255 steps, h×w uint8.

        Two bilinear halvings are each an exact 2×2 mean (samples fall midway between source
        pixels), so together they are the 4×4 box mean, to within one grey level, and about ten
        times faster than INTER_AREA on large canvases.
        """
        half = cv2.resize(self.pixels, (self.width * 2, self.height * 2), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(half, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def alpha(self) -> np.ndarray:
        """`_alpha` of the coverage, in one table lookup."""
        return _alpha8(self.coverage8())

    def stroke(self, points: np.ndarray, widths: np.ndarray) -> None:
        """A polyline whose width (pixels) varies per segment, in steps of half a pixel; each run
        of equal width is one cv2 call, and cv2's round caps keep the joints smooth."""
        fixed = self.fixed(points)
        thickness = np.maximum(1, 2 * np.round(widths * (_SS / 2))).astype(int)
        bounds = [0, *(np.flatnonzero(np.diff(thickness)) + 1).tolist(), len(thickness)]
        for start, end in zip(bounds[:-1], bounds[1:]):
            cv2.polylines(self.pixels, [fixed[start : end + 1]], False, 255, int(thickness[start]), cv2.LINE_8, _SHIFT)

    def fill(self, polygon: np.ndarray) -> None:
        cv2.fillPoly(self.pixels, [self.fixed(polygon)], 255, cv2.LINE_8, _SHIFT)


def _alpha(coverage: np.ndarray) -> np.ndarray:
    """Alpha from coverage; a draw thinner than half a pixel everywhere is thickened to one pixel
    (its coverage rescaled to peak at 1) so that the mask is never empty."""
    peak = cv2.minMaxLoc(coverage)[1]
    if peak <= 0.0:  # cannot happen with cv2's rasteriser (it always sets a pixel); kept as a guard
        coverage = coverage.copy()
        coverage[coverage.shape[0] // 2, coverage.shape[1] // 2] = 1.0
    elif peak < 0.5:
        coverage = coverage * (1.0 / peak)
    alpha = (coverage - 0.5) * _EDGE + 0.5
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def _alpha8(coverage8: np.ndarray) -> np.ndarray:
    """`_alpha` of a coverage in 1/255 steps (h×w uint8), in one table lookup where it can be."""
    if cv2.minMaxLoc(coverage8)[1] >= 128:
        return cv2.LUT(coverage8, _ALPHA_LUT)
    return _alpha(coverage8.astype(np.float32) * (1.0 / 255.0))


# _alpha of each uint8 coverage level (for canvases whose peak coverage is at least one half;
# the levels include full coverage, so _alpha does not rescale them)
_ALPHA_LUT = _alpha(np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0))


def _bounds(points: np.ndarray) -> np.ndarray:
    """[[least x, least y], [greatest x, greatest y]] of `points` (n×2)."""
    return np.array((np.minimum.reduce(points), np.maximum.reduce(points)))  # the ufuncs: np.stack costs more


def _fit(paths: list[np.ndarray], pad: float, image_hw: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Shrink `paths` (x, y points) about their common centre so that the patch drawn around them
    with `pad` pixels of padding fits inside the image; unchanged when it already fits. Returns the
    paths and their bounds (`kernels.fit_points` of all their points)."""
    points, bounds = scene.kernels.fit_points(np.concatenate(paths), float(pad), *image_hw)
    return np.split(points, np.cumsum([len(p) for p in paths[:-1]])), bounds


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cell: float, low: float, high: float) -> np.ndarray:
    """A smooth random map of `shape` with values in [low, high], varying over `cell` pixels."""
    gh, gw = max(2, int(shape[0] / cell) + 2), max(2, int(shape[1] / cell) + 2)
    small = rng.uniform(low, high, (gh, gw)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _pick_tone(rng: np.random.Generator, tone: str) -> str:
    return tone if tone != "any" else ("dark", "light")[int(rng.integers(2))]


def _channels(m: np.ndarray) -> np.ndarray:
    """A gain or offset map as float32 h×w×1 (grey) or h×w×3 (per channel), or a float32 scalar."""
    return (m[..., None] if np.ndim(m) == 2 else m).astype(np.float32, copy=False)


Made = tuple[np.ndarray, np.ndarray, np.ndarray]  # alpha, gain, offset


# ---------------------------------------------------------------- defects


@functools.lru_cache(maxsize=256)
def _bezier(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Bernstein basis at n evenly spaced t (n×4), and the scratch's taper sin(πt)^0.6 (n)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    basis = np.hstack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3])
    taper = np.sin(np.pi * t[:, 0]) ** 0.6
    basis.flags.writeable = taper.flags.writeable = False
    return basis, taper


def _scratch(spec: ScratchSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    short = min(image_hw)
    length = uniform(rng, spec.length) * short
    width = uniform(rng, spec.width)
    bend = uniform(rng, spec.curvature)
    # cubic Bézier in a local frame along x: a C (same-side controls) or an S (opposite sides)
    first, second = (-1.0 if u < 0.5 else 1.0 for u in rng.random(2).tolist())
    second *= uniform(rng, (0.3, 1.0))
    controls = np.array([[0.0, 0.0], [length / 3, bend * length * first], [2 * length / 3, bend * length * second], [length, 0.0]])
    angle = uniform(rng, (0.0, 2 * math.pi))
    basis, taper = _bezier(max(8, int(length / 2.5)))
    # a ribbon around the curve turned by `angle`, widest in the middle and tapering to points at both ends
    outline, bounds = scene.kernels.ribbon(controls, math.cos(angle), math.sin(angle), basis, taper, width / 2,
                                           width / 2 + 2, *image_hw)
    canvas = _Canvas(bounds, width / 2 + 2)
    canvas.fill(outline)
    alpha = canvas.alpha()
    tone = _pick_tone(rng, spec.tone)
    contrast = uniform(rng, spec.contrast)
    strength = _smooth(rng, alpha.shape, max(8.0, length / 6), 0.6, 1.0)
    return scene.kernels.toned(alpha, strength, contrast, tone == "light")


_PULL = 0.6 ** np.arange(24)  # memory of the previous turn (0.6^24 ≈ 0: a truncated AR(1) filter)


def _walk(rng: np.random.Generator, start: np.ndarray, heading: float, length: float, step: float) -> np.ndarray:
    """A jagged path: each step turns randomly, and the deviation from `heading` decays by 0.6 a step."""
    n = max(2, int(length / step))
    angles = heading + np.convolve(rng.normal(0.0, 0.45, n), _PULL)[:n]
    moves = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    return np.vstack([start[None], start + np.cumsum(moves, axis=0)])


def _crack(spec: CrackSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    short = min(image_hw)
    length = uniform(rng, spec.length) * short
    width = uniform(rng, spec.width)
    heading = uniform(rng, (0.0, 2 * math.pi))
    step = max(1.5, length / 60)
    # the trunk grows both ways from its origin and thins toward the tips
    share = uniform(rng, (0.35, 0.65))
    paths = [
        _walk(rng, np.zeros(2), heading, length * share, step),
        _walk(rng, np.zeros(2), heading + math.pi, length * (1 - share), step),
    ]
    widths = [width, width]
    for _ in range(integer(rng, spec.branches)):
        trunk = paths[int(rng.integers(2))]
        at = int(rng.integers(1, max(2, len(trunk) - 1)))
        direction = trunk[min(at + 1, len(trunk) - 1)] - trunk[at - 1]
        angle = math.atan2(direction[1], direction[0]) + (1.0 if rng.random() < 0.5 else -1.0) * uniform(rng, (0.4, 1.1))
        fraction = 1.0 - at / len(trunk)  # thinner the farther out the branch starts
        paths.append(_walk(rng, trunk[at], angle, length * uniform(rng, (0.15, 0.4)), step))
        widths.append(max(0.6, width * (0.35 + 0.45 * fraction)))
    paths, bounds = _fit(paths, width / 2 + 2, image_hw)
    canvas = _Canvas(bounds, width / 2 + 2)
    for path, w in zip(paths, widths):
        along = np.linspace(0.0, 1.0, len(path) - 1)
        canvas.stroke(path, w * (1.0 - 0.75 * along**1.3))
    alpha = canvas.alpha()
    contrast = uniform(rng, spec.contrast)
    return scene.kernels.toned(alpha, _smooth(rng, alpha.shape, max(6.0, length / 8), 0.75, 1.0), contrast, False)


_HARMONICS = np.arange(1, 7)  # of the stain outline's wandering radius
_HARMONICS.flags.writeable = False


def _stain(spec: StainSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    short = min(image_hw)
    radius = uniform(rng, spec.size) * short / 2
    # polar blob: the radius wanders with a few low harmonics (their sum stays above −0.6)
    amps = rng.uniform(0.0, 0.25, 6) / _HARMONICS
    phases = rng.uniform(0.0, 2 * math.pi, 6)
    elongation, tilt = uniform(rng, (0.6, 1.0)), uniform(rng, (0.0, math.pi))  # a little elongated
    outline, bounds = scene.kernels.blob(radius, amps, phases, elongation, tilt, 2.0, *image_hw)
    canvas = _Canvas(bounds, 2.0)
    canvas.fill(outline)
    coverage8 = canvas.coverage8()
    alpha, coverage = _alpha8(coverage8), coverage8.astype(np.float32) * (1.0 / 255.0)
    # dye settles unevenly, and often darker along the rim where it dried last
    inner = cv2.GaussianBlur(coverage, (0, 0), max(1.0, radius * 0.15))
    rim = uniform(rng, (0.0, 0.6))
    opacity = uniform(rng, spec.opacity)
    smooth = _smooth(rng, alpha.shape, max(4.0, radius / 2), 0.65, 1.0)
    tint = np.array(spec.colors[int(rng.integers(len(spec.colors)))], np.float32)
    # towards mostly a multiply by the tint (a transparent dye darkens every surface it covers)
    # and a little of the tint itself (a deposit, which is what shows on dark surfaces)
    return scene.kernels.stain(alpha, inner, smooth, rim, opacity, tint * (0.8 / 255.0) - 1.0, 0.1 * tint)


def _ellipse(a: float, b: float, angle: float, shift: np.ndarray, pad: float = 2.0) -> tuple:
    """The patch of an ellipse (semi-axes a ≥ b, rotated by `angle`) centred in a small patch and
    moved by `shift` pixels, as the arguments `kernels.pit` and `kernels.dent` begin with:
    (h, w, x and y of pixel (0, 0)'s centre from the ellipse's centre, cos, sin, a, b, 2/a², 2/b²).

    Pixel coverage is found analytically: ρ² = (u/a)² + (v/b)², and the signed distance to the
    edge is about (ρ² − 1) / |∇ρ²|, so coverage ≈ clip(0.5 − distance, 0, 1).
    """
    c, s = math.cos(angle), math.sin(angle)
    reach_x, reach_y = math.hypot(a * c, b * s), math.hypot(a * s, b * c)
    height, width = int(math.ceil(2 * (reach_y + pad))), int(math.ceil(2 * (reach_x + pad)))
    shift_x, shift_y = shift.tolist()
    return (height, width, 0.5 - width / 2 - shift_x, 0.5 - height / 2 - shift_y, c, s, a, b, 2 / a**2, 2 / b**2)


def _pit(spec: PitSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    radius = max(0.5, min(uniform(rng, spec.radius), min(image_hw) / 2 - 3))  # patch fits the image
    shape = _ellipse(radius, radius * uniform(rng, (0.75, 1.0)), uniform(rng, (0.0, math.pi)), rng.uniform(-0.5, 0.5, 2))
    contrast = uniform(rng, spec.contrast)
    # a dark floor, darkest in the middle; the inner wall facing the light is lit near the rim
    light = uniform(rng, (0.0, 2 * math.pi))
    return scene.kernels.pit(*shape, radius, math.cos(light), math.sin(light), contrast)


def _dent(spec: DentSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    radius = max(0.5, min(uniform(rng, spec.size) * min(image_hw) / 2, min(image_hw) / 2 - 3))
    shape = _ellipse(radius, radius * uniform(rng, (0.6, 1.0)), uniform(rng, (0.0, math.pi)), rng.uniform(-0.5, 0.5, 2))
    # depth z = −(1 − ρ²)² inside; brightness follows the slope facing the light (−∇z · light)
    light = uniform(rng, (0.0, 2 * math.pi))
    return scene.kernels.dent(*shape, math.cos(light), math.sin(light), uniform(rng, spec.contrast))


def _particles(spec: ParticlesSpec, rng: np.random.Generator, image_hw: tuple[int, int]) -> Made:
    short = min(image_hw)
    spread = max(0.0, min(uniform(rng, spec.spread) * short, short / 2 - 6))  # patch fits the image
    n = integer(rng, spec.dots)
    # centres on pixel centres, so a dot of radius ≥ 0.4 px always covers its own pixel by half
    angles = rng.uniform(0.0, 2 * math.pi, n)
    dist = spread * np.clip(np.abs(rng.normal(0.0, 0.5, n)), 0.0, 1.0)
    centres = np.floor(np.stack([dist * np.cos(angles), dist * np.sin(angles)], axis=1)) + 0.5
    radii = np.minimum(rng.uniform(spec.dot_radius[0], spec.dot_radius[1], n), max(0.5, (short - 4) / 2 - spread))
    canvas = _Canvas(_bounds(centres), float(radii.max()) + 2)
    strength = np.zeros((canvas.height, canvas.width), np.float32)
    contrast = uniform(rng, spec.contrast)
    fixed = canvas.fixed(centres).tolist()
    pixels = np.floor(canvas.local(centres)).astype(int).tolist()
    sub_radii = np.round(radii * (_SS << _SHIFT)).astype(int).tolist()
    reach = (np.ceil(radii).astype(int) + 1).tolist()
    for centre, pixel, r, k, cover in zip(fixed, pixels, sub_radii, (rng.uniform(0.6, 1.0, n) * contrast).tolist(), reach):
        cv2.circle(canvas.pixels, centre, r, 255, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(strength, pixel, cover, k, -1)  # each dot's own strength over its footprint
    alpha = canvas.alpha()
    return scene.kernels.toned(alpha, strength, 1.0, _pick_tone(rng, spec.tone) == "light")


_MAKERS: dict[type, Callable[[Spec, np.random.Generator, tuple[int, int]], Made]] = {
    ScratchSpec: _scratch,
    CrackSpec: _crack,
    StainSpec: _stain,
    PitSpec: _pit,
    DentSpec: _dent,
    ParticlesSpec: _particles,
}
