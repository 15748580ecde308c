"""The compiled loops against what they replaced: OpenCV's bytes for painting, and the NumPy array
expressions of each defect's maps (written out here as the reference), on many random draws."""

import math

import cv2
import numpy as np
import pytest

from vision_synth.scene import kernels
from vision_synth.scene.defects import _alpha, _ellipse
from vision_synth.scene.placement import _map3

H, W = 37, 41


def opencv_paint(window: np.ndarray, alpha: np.ndarray, gain, offset) -> np.ndarray:
    """The paste as two OpenCV calls: under·G + O in float32, rounded and saturated to uint8."""
    a = cv2.merge([alpha, alpha, alpha])
    g = (1.0 - a * (1.0 - np.broadcast_to(np.asarray(gain, np.float32), a.shape))).astype(np.float32)
    o = (a * np.broadcast_to(np.asarray(offset, np.float32), a.shape)).astype(np.float32)
    return cv2.add(cv2.multiply(window, g, dtype=cv2.CV_32F), o, dtype=cv2.CV_8U)


def maps(rng, form):
    u = lambda *shape: rng.random(shape, dtype=np.float32)  # noqa: E731
    return {
        "solid colour": lambda: (np.float32(0.0), rng.uniform(0, 255, 3).astype(np.float32)),
        "solid image": lambda: (np.float32(0.0), u(H, W, 3) * 255),
        "grey maps": lambda: (u(H, W, 1) * 2, u(H, W, 1) * 300 - 40),  # saturates both ways
        "colour maps": lambda: (u(H, W, 3), u(H, W, 3) * 80),
        "darken only": lambda: (u(H, W, 1), np.float32(0.0)),
        "identity": lambda: (np.float32(1.0), np.float32(0.0)),
    }[form]()


@pytest.mark.parametrize("form", ["solid colour", "solid image", "grey maps", "colour maps", "darken only", "identity"])
def test_paint_gives_the_bytes_opencv_gave(form):
    rng = np.random.default_rng(len(form))
    for _ in range(20):
        alpha = rng.random((H, W), dtype=np.float32)
        alpha[rng.random((H, W)) < 0.3] = 0.0  # skipped pixels
        alpha[rng.random((H, W)) < 0.2] = 1.0
        gain, offset = maps(rng, form)
        image = rng.integers(0, 256, (H + 6, W + 4, 3), dtype=np.uint8)
        window = image[3 : 3 + H, 2 : 2 + W]
        expected = opencv_paint(window.copy(), alpha, gain, offset)
        before = image.copy()
        kernels.paint(image, 3, 2, alpha, _map3(gain), _map3(offset))
        np.testing.assert_array_equal(window, expected)
        outside = np.ones(image.shape[:2], bool)
        outside[3 : 3 + H, 2 : 2 + W] = False
        np.testing.assert_array_equal(image[outside], before[outside])


def test_paint_rounds_halves_to_even_and_saturates():
    offsets = np.array([[[0.5, 1.5, 2.5]], [[253.5, 254.5, 300.0]], [[-3.0, -0.5, 0.49999997]]], np.float32)
    window = np.full((3, 1, 3), 7, np.uint8)
    kernels.paint(window, 0, 0, np.ones((3, 1), np.float32), _map3(np.float32(0.0)), offsets)
    np.testing.assert_array_equal(window[:, 0], [[0, 2, 2], [254, 254, 255], [0, 0, 0]])
    np.testing.assert_array_equal(window, opencv_paint(np.full((3, 1, 3), 7, np.uint8), np.ones((3, 1), np.float32),
                                                      0.0, offsets))


def test_shade_is_the_formula():
    rng = np.random.default_rng(4)
    field = rng.integers(0, 256, (90, 100), dtype=np.uint8)
    saturated = set()
    for k in range(30):
        rows, cols = rng.uniform(0.3, 1.4, 40).astype(np.float32), rng.uniform(-0.6, 0.6, 50).astype(np.float32)
        dark, light = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        scale = (light - dark) / 255.0
        y, x = (int(v) for v in rng.integers(0, 40, 2))
        flip = bool(k % 2)
        got = kernels.shade(field, y, x, flip, rows, cols, dark, scale)
        window = field[y : y + 40, x : x + 50]
        window = window[::-1] if flip else window
        # the gain in uint8 steps of 1/128 (saturated: negative gains are 0, the largest 255/128)
        gain = np.clip(np.rint((rows[:, None] + cols[None, :]) * np.float32(128)), 0, 255).astype(np.uint8)
        lit = cv2.multiply(np.ascontiguousarray(window), gain, scale=1.0 / 128).astype(np.float64)
        # the ramp's multiply-add rounded once, to float32 (float64 holds the product exactly)
        ramp = lit[..., None] * scale.astype(np.float32).astype(np.float64) + dark.astype(np.float32)
        expected = np.rint(np.minimum(np.abs(ramp.astype(np.float32)), 255)).astype(np.uint8)
        np.testing.assert_array_equal(got, expected)
        saturated |= {int(g) for g in (gain.min(), gain.max())} & {0, 255}
    assert saturated == {0, 255}  # the gain saturated both ways


def ellipse_reference(h, w, ox, oy, c, s, a, b, ka, kb):
    """ρ², ∇ρ² and the coverage of `_ellipse`'s patch as NumPy array expressions (float32)."""
    x = np.arange(w, dtype=np.float32)[None, :] + np.float32(ox)
    y = np.arange(h, dtype=np.float32)[:, None] + np.float32(oy)
    u, v = x * c + y * s, y * c - x * s
    rho2 = (u / a) ** 2 + (v / b) ** 2
    du, dv = u * ka, v * kb
    gx, gy = du * c - dv * s, du * s + dv * c
    coverage = np.clip(0.5 - (rho2 - 1.0) / np.maximum(np.hypot(gx, gy), 1e-6), 0.0, 1.0)
    return x, y, rho2, gx, gy, coverage


def crop(alpha, *maps):
    ys, xs = np.nonzero(alpha > 0)
    rows = slice(max(0, ys.min() - 1), min(alpha.shape[0], ys.max() + 2))
    cols = slice(max(0, xs.min() - 1), min(alpha.shape[1], xs.max() + 2))
    return [m[rows, cols] for m in (alpha, *maps)]


def ellipses(seed, n=200, small=False):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        a = float(rng.uniform(0.3, 1.5) if small else rng.uniform(1.0, 30.0))
        yield a, _ellipse(a, a * float(rng.uniform(0.6, 1.0)), float(rng.uniform(0, math.pi)), rng.uniform(-0.5, 0.5, 2)), rng


@pytest.mark.parametrize("small", [False, True])
def test_pit_maps_are_the_formula(small):
    for radius, shape, rng in ellipses(1, small=small):
        light, contrast = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.4, 0.8))
        x, y, rho2, _, _, coverage = ellipse_reference(*shape)
        rho = np.sqrt(rho2)
        facing = -(x * math.cos(light) + y * math.sin(light)) / np.maximum(rho * radius, 1e-3)
        wall = np.clip(facing, 0.0, 1.0) ** 1.5 * np.clip(1.0 - np.abs(rho - 0.7) * (1 / 0.28), 0.0, 1.0)
        dark = contrast * np.clip(1.0 - 0.45 * rho2, 0.0, 1.0) * (1.0 - wall)
        lit = (0.6 * contrast) * wall
        alpha, gain, offset = crop(_alpha(coverage), 1.0 - dark - lit, 255.0 * lit)
        got = kernels.pit(*shape, radius, math.cos(light), math.sin(light), contrast)
        np.testing.assert_array_equal(got[0], alpha)  # the same alpha, so the same mask
        np.testing.assert_allclose(got[1], gain, atol=1e-6)
        np.testing.assert_allclose(got[2], offset, atol=1e-4)  # float32 pow may differ in its last bit
        assert (got[0] >= 0.5).any()


@pytest.mark.parametrize("small", [False, True])
def test_dent_maps_are_the_formula(small):
    for _, shape, rng in ellipses(2, small=small):
        light, contrast = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.15, 0.4))
        _, _, rho2, gx, gy, coverage = ellipse_reference(*shape)
        alpha = _alpha(coverage)
        slope = np.clip(1.0 - rho2, 0.0, None) * (gx * math.cos(light) + gy * math.sin(light)) * (alpha >= 0.5)
        shade = slope * (contrast / max(float(np.abs(slope).max()), 1e-6))
        up, down = np.clip(shade, 0.0, None), np.clip(shade, None, 0.0)
        expected = crop(alpha, 1.0 - up + down, 255.0 * up)
        for got, want in zip(kernels.dent(*shape, math.cos(light), math.sin(light), contrast), expected):
            np.testing.assert_array_equal(got, want)


def test_toned_and_stain_maps_are_the_formula():
    rng = np.random.default_rng(3)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(3, 40, 2))
        alpha = np.where(rng.random((h, w)) < 0.7, 0.0, rng.random((h, w))).astype(np.float32)
        alpha[int(rng.integers(h)), int(rng.integers(w))] = 1.0
        strength, inner, smooth = (rng.random((h, w), dtype=np.float32) for _ in range(3))
        k, light = float(rng.uniform(0.2, 0.8)), bool(rng.random() < 0.5)
        s = k * strength
        got = kernels.toned(alpha, strength, k, light)
        expected = crop(alpha, 1.0 - s, 255.0 * s if light else np.zeros((h, w), np.float32))
        for g, e in zip(got[:2], expected[:2]):
            np.testing.assert_array_equal(g, e)
        np.testing.assert_array_equal(got[2], expected[2] if light else np.zeros((1, 1), np.float32))

        rim, opacity = float(rng.uniform(0, 0.6)), float(rng.uniform(0.3, 0.7))
        tint = rng.uniform(0, 255, 3).astype(np.float32)
        tint_gain, tint_offset = tint * (0.8 / 255.0) - 1.0, 0.1 * tint
        strength = opacity * (smooth + np.clip((1.0 - inner) * 2.0, 0.0, 1.0) * rim)
        np.clip(strength, 0.0, 1.0, out=strength)
        a, s = crop(alpha, strength)
        gain = cv2.merge([s * c + np.float32(1.0) for c in tint_gain.tolist()])
        offset = cv2.merge([s * c for c in tint_offset.tolist()])
        for g, e in zip(kernels.stain(alpha, inner, smooth, rim, opacity, tint_gain, tint_offset), (a, gain, offset)):
            np.testing.assert_array_equal(g, e)


def fit_reference(points, pad, image_hw):
    """`defects._fit` of one path, as the NumPy expressions the outline loops replaced."""
    bounds = np.array((points.min(axis=0), points.max(axis=0)))
    (x0, y0), (x1, y1) = bounds.tolist()
    room_x, room_y = max(image_hw[1] - 2 * pad - 2, 1.0), max(image_hw[0] - 2 * pad - 2, 1.0)
    scale = min(room_x / max(x1 - x0, 1e-6), room_y / max(y1 - y0, 1e-6))
    if scale >= 1.0:
        return points, bounds
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return centre + (points - centre) * scale, centre + (bounds - centre) * scale


@pytest.mark.parametrize("image_hw", [(512, 512), (40, 90)])  # the second shrinks most curves to fit
def test_scratch_outline_is_the_formula(image_hw):
    from vision_synth.scene.defects import _bezier

    rng = np.random.default_rng(8)
    for _ in range(40):
        length, width, n = rng.uniform(10, 300), rng.uniform(0.5, 6), int(rng.integers(8, 120))
        controls = np.array([[0, 0], [length / 3, rng.uniform(-1, 1) * length], [2 * length / 3, rng.uniform(-1, 1) * length],
                             [length, 0]])
        angle = rng.uniform(0, 2 * math.pi)
        basis, taper = _bezier(n)
        got, got_bounds = kernels.ribbon(controls, math.cos(angle), math.sin(angle), basis, taper, width / 2, width / 2 + 2,
                                         *image_hw)
        c, s = math.cos(angle), math.sin(angle)
        points, bounds = fit_reference(basis @ (controls @ np.array([[c, s], [-s, c]])), width / 2 + 2, image_hw)
        tangent = np.empty_like(points)
        tangent[1:-1] = (points[2:] - points[:-2]) * 0.5
        tangent[0], tangent[-1] = points[1] - points[0], points[-1] - points[-2]
        normal = tangent[:, ::-1] * np.array([-1.0, 1.0]) / np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
        half = (width / 2 * taper)[:, None]
        expected = np.vstack([points + normal * half, (points - normal * half)[::-1]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * length)
        np.testing.assert_allclose(got_bounds, bounds, rtol=0, atol=1e-9 * length)


@pytest.mark.parametrize("image_hw", [(512, 512), (30, 60)])
def test_stain_outline_is_the_formula(image_hw):
    rng = np.random.default_rng(9)
    phi = np.linspace(0.0, 2 * math.pi, 96, endpoint=False)
    k = np.arange(1, 7)
    for _ in range(40):
        radius, amps, phases = rng.uniform(3, 120), rng.uniform(0, 0.25, 6) / k, rng.uniform(0, 2 * math.pi, 6)
        elongation, tilt = rng.uniform(0.6, 1.0), rng.uniform(0, math.pi)
        got, got_bounds = kernels.blob(radius, amps, phases, elongation, tilt, 2.0, *image_hw)
        r = radius * (1.0 + (amps[:, None] * np.cos(k[:, None] * phi + phases[:, None])).sum(axis=0))
        r *= elongation ** np.abs(np.sin(phi - tilt))
        outline, bounds = fit_reference(np.stack([np.cos(phi), np.sin(phi)], axis=1) * r[:, None], 2.0, image_hw)
        np.testing.assert_allclose(got, outline, rtol=0, atol=1e-9 * radius)
        np.testing.assert_allclose(got_bounds, bounds, rtol=0, atol=1e-9 * radius)


def overlap_reference(labels, mask, y, x, area, visible, full, max_overlap, min_area, min_fraction):
    """The placement test as the NumPy expressions it replaced: (verdict, pixels lost per label)."""
    h, w = mask.shape
    beneath = labels[y : y + h, x : x + w][mask]
    over = int(np.count_nonzero(beneath))
    if not over:
        return 0, None
    if over > max_overlap * area:
        return -1, None
    lost = np.bincount(beneath, minlength=len(visible))
    lost[0] = 0
    remaining = visible - lost
    remaining[0] = 0
    too_small = (remaining < min_area) | (remaining < min_fraction * full)
    return (-1 if np.any((remaining > 0) & too_small) else 1), lost


def test_overlap_and_stamp_are_the_placement_rules():
    rng = np.random.default_rng(10)
    verdicts = set()
    for _ in range(300):
        n = int(rng.integers(1, 7))  # labels 1..n-1 placed so far
        labels = np.zeros((40, 50), np.uint8)
        full = np.zeros(n, np.int64)
        for k in range(1, n):
            y, x, h, w = (int(v) for v in (rng.integers(0, 30), rng.integers(0, 40), rng.integers(3, 12), rng.integers(3, 12)))
            shape = rng.random((h, w)) < 0.7
            expected = labels.copy()
            np.copyto(expected[y : y + h, x : x + w], k, where=shape)  # what the kernel replaced
            kernels.stamp(labels, shape, y, x, k)
            assert np.array_equal(labels, expected)
            full[k] = shape.sum()
        visible = np.bincount(labels.ravel(), minlength=n)[:n].astype(np.int64)
        visible[0] = 0
        mask = rng.random((int(rng.integers(2, 15)), int(rng.integers(2, 15)))) < 0.8
        y, x = int(rng.integers(0, 40 - mask.shape[0] + 1)), int(rng.integers(0, 50 - mask.shape[1] + 1))
        area, rules = int(mask.sum()), (float(rng.uniform(0, 1)), int(rng.integers(1, 20)), float(rng.uniform(0, 0.6)))
        lost = np.full(n, -7, np.int64)
        got = kernels.overlap(labels, mask, y, x, area, visible, full, *rules, lost)
        verdict, expected_lost = overlap_reference(labels, mask, y, x, area, visible, full, *rules)
        assert got == verdict
        if verdict == 1:
            np.testing.assert_array_equal(lost, expected_lost)
        verdicts.add(verdict)
    assert verdicts == {-1, 0, 1}


def test_overlap_refuses_to_leave_a_sliver_and_allows_hiding_all():
    labels = np.zeros((10, 10), np.uint8)
    labels[0, :5] = 1  # instance 1: five pixels in a row
    visible, full, lost = np.array([0, 5]), np.array([0, 5]), np.zeros(2, np.int64)
    cover = lambda k: np.ones((1, k), bool)  # noqa: E731  (the first k of them)
    assert kernels.overlap(labels, cover(4), 0, 0, 4, visible, full, 1.0, 2, 0.0, lost) == -1  # one pixel left
    assert kernels.overlap(labels, cover(5), 0, 0, 5, visible, full, 1.0, 2, 0.0, lost) == 1  # hidden entirely
    assert lost.tolist() == [0, 5]
    assert kernels.overlap(labels, cover(3), 0, 0, 3, visible, full, 1.0, 2, 0.0, lost) == 1  # two left
    assert kernels.overlap(labels, cover(3), 0, 0, 3, visible, full, 1.0, 2, 0.5, lost) == -1  # 2 < half of 5
    assert kernels.overlap(labels, cover(3), 0, 5, 3, visible, full, 1.0, 2, 0.5, lost) == 0  # beside it
