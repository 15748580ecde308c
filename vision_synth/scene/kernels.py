"""Compiled per-pixel loops (numba) for the compositor.

A defect or sprite patch is a few hundred to a few thousand pixels, where a chain of NumPy and
OpenCV calls costs more in calls and temporary arrays than in arithmetic: each of these loops does
in one pass what took 10 to 75 calls (the outlines of scratches and stains: what took some 30
small-array expressions). The texture bank's colouring (`shade`) lights and colours the image in
one pass, working out the lighting of each row beside it, where a resized gain map and five OpenCV
passes were. The loops compute in the same order as the array expressions they replaced (no
fast-math: no reassociation, and a fused multiply-add only where OpenCV's code had one), so
pasting gives the bytes OpenCV gave, and the defect maps and outlines agree with NumPy's to within
rounding (the same bytes on every shipped config).

Compiled code is cached beside this file (numba's `cache=True`; a read-only install uses the
user's cache folder), so only the first process after an install compiles (~16 s; `make install`
does it, with `tools/warm_kernels.py`); later ones load it in about 0.4 s.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_F = np.float32
_ONE, _ZERO, _HALF = _F(1.0), _F(0.0), _F(0.5)
_EDGE = _F(4.0)  # alpha = 0.5 + _EDGE·(coverage − 0.5) (the defects' steep ramp: see defects.py)
_ROUND = _F(8388608.0)  # 2**23: (v + 2**23) − 2**23 rounds 0 ≤ v < 2**23 half to even, as OpenCV does


@njit(cache=True, nogil=True)
def paint(image, y, x, alpha, gain, offset):
    """Paste a layer into `image` (H×W×3 uint8, C-contiguous, in place) at row `y`, column `x`:
    each pixel under it ← saturate(round(under · (1 − α·(1 − gain)) + α · offset)), the layer's
    colours `under · gain + offset` blended by α, in float32, rounded half to even (OpenCV's bytes).
    `alpha` is h×w; `gain` and `offset` are float32 C-contiguous h×w×3 (per channel), h×w×1 (grey),
    1×1×3 (one colour) or 1×1×1 (one value). Pixels of α = 0 are left as they are (the formula
    gives back the same byte)."""
    if (gain.shape[0] > 1 and gain.shape[2] == 1) or (offset.shape[0] > 1 and offset.shape[2] == 1):
        _paint_grey(image, y, x, alpha, gain, offset)
        return
    # colour maps and constants (sprites, stains): row by row over the span of α > 0, in a loop
    # over 3 values a pixel that the compiler vectorises
    h, w = alpha.shape
    pixels = image.reshape(-1)
    gains, offsets = _constant_row(gain, w), _constant_row(offset, w)
    for i in range(h):
        row = alpha[i]
        j0, j1 = 0, w
        while j0 < j1 and row[j0] == _ZERO:
            j0 += 1
        while j1 > j0 and row[j1 - 1] == _ZERO:
            j1 -= 1
        g = gains if gain.shape[0] == 1 else gain[i].reshape(-1)
        o = offsets if offset.shape[0] == 1 else offset[i].reshape(-1)
        start = ((y + i) * image.shape[1] + x) * 3
        # slices from column j0, so that the loop's indices start at 0 (known not negative: it vectorises)
        _blend(pixels[start + 3 * j0 : start + 3 * j1], row[j0:j1], g[3 * j0 : 3 * j1], o[3 * j0 : 3 * j1])


@njit(cache=True, nogil=True)
def _constant_row(m, w):
    """The 3w values (r, g, b of each pixel) of a row of a map that does not vary per pixel (1×1×1
    or 1×1×3); nothing for a per-pixel map."""
    if m.shape[0] > 1:
        return np.empty(0, np.float32)
    row = np.empty(3 * w, np.float32)
    for j in range(w):
        for c in range(3):
            row[3 * j + c] = m[0, 0, c if m.shape[2] > 1 else 0]
    return row


@njit(cache=True, nogil=True)
def _blend(pixels, alpha, gain, offset):
    top = _F(255.0)
    for j in range(alpha.shape[0]):
        a = alpha[j]
        for c in range(3):
            k = 3 * j + c
            v = _F(pixels[k]) * (_ONE - a * (_ONE - gain[k]))
            v = min(max(v + a * offset[k], _ZERO), top)
            pixels[k] = np.uint8((v + _ROUND) - _ROUND)


@njit(cache=True, nogil=True)
def _paint_grey(image, y, x, alpha, gain, offset):
    """`paint` of a layer with a grey map: pixel by pixel, skipping those of α = 0 (a line defect's
    patch is mostly empty)."""
    h, w = alpha.shape
    gi, gj, gc = int(gain.shape[0] > 1), int(gain.shape[1] > 1), int(gain.shape[2] > 1)
    oi, oj, oc = int(offset.shape[0] > 1), int(offset.shape[1] > 1), int(offset.shape[2] > 1)
    top = _F(255.0)
    for i in range(h):
        for j in range(w):
            a = alpha[i, j]
            if a == _ZERO:
                continue
            for c in range(3):
                v = _F(image[y + i, x + j, c]) * (_ONE - a * (_ONE - gain[i * gi, j * gj, c * gc]))
                v = min(max(v + a * offset[i * oi, j * oj, c * oc], _ZERO), top)
                image[y + i, x + j, c] = np.uint8((v + _ROUND) - _ROUND)


@njit(cache=True, nogil=True, inline="always")
def _ellipse_at(x, y, c, s, ia, ib, ka, kb):
    """ρ² = (u/a)² + (v/b)² of the point (x, y) in the ellipse's frame, ∇ρ² in image axes, and the
    pixel's coverage clip(0.5 − (ρ² − 1)/|∇ρ²|, 0, 1) (the signed distance to the edge, to first
    order). `ia`, `ib` are the semi-axes a, b; `ka`, `kb` are 2/a², 2/b²."""
    u = x * c + y * s
    v = y * c - x * s
    ua = u / ia
    vb = v / ib
    rho2 = ua * ua + vb * vb
    du = u * ka
    dv = v * kb
    gx = du * c - dv * s
    gy = du * s + dv * c
    distance = (rho2 - _ONE) / max(math.hypot(gx, gy), _F(1e-6))
    return rho2, gx, gy, min(max(_HALF - distance, _ZERO), _ONE)


@njit(cache=True, nogil=True)
def _ellipse_alpha(h, w, ox, oy, c, s, ia, ib, ka, kb):
    """The defects' alpha of an ellipse centred in an h×w patch (pixel (i, j) at x = j + ox,
    y = i + oy), and ρ² and ∇ρ² (x and y) per pixel. A coverage that peaks below one half is
    rescaled to peak at 1, so that the mask is never empty (as `defects._alpha`)."""
    ox, oy, c, s, ia, ib, ka, kb = _F(ox), _F(oy), _F(c), _F(s), _F(ia), _F(ib), _F(ka), _F(kb)
    alpha = np.empty((h, w), np.float32)
    rho2, grad_x, grad_y = np.empty((h, w), np.float32), np.empty((h, w), np.float32), np.empty((h, w), np.float32)
    peak = _ZERO
    for i in range(h):
        y = _F(i) + oy
        for j in range(w):
            rho2[i, j], grad_x[i, j], grad_y[i, j], cover = _ellipse_at(_F(j) + ox, y, c, s, ia, ib, ka, kb)
            alpha[i, j] = cover
            peak = max(peak, cover)
    if peak <= _ZERO:
        alpha[h // 2, w // 2] = _ONE
        peak = _ONE
    scale = _F(1.0 / np.float64(peak)) if peak < _HALF else _ONE
    for i in range(h):
        for j in range(w):
            cover = alpha[i, j] * scale if scale != _ONE else alpha[i, j]
            alpha[i, j] = min(max((cover - _HALF) * _EDGE + _HALF, _ZERO), _ONE)
    return alpha, rho2, grad_x, grad_y


@njit(cache=True, nogil=True)
def overlap(labels, mask, y, x, area, visible, full, max_overlap, min_area, min_fraction, lost):
    """Whether a mask (h×w bool, `area` pixels) may go at row `y`, column `x` over the label map
    `labels` (H×W) of the instances placed so far, labels 1..n−1 (`visible` and `full`: their
    visible and whole pixel counts, n long): 0 when nothing lies beneath it, 1 when what lies beneath
    is at most `max_overlap` of its area and leaves every earlier instance either hidden entirely or
    visible over at least `min_area` pixels and `min_fraction` of its whole (`lost` then holds the
    pixels each would lose), −1 otherwise (`placement.PlacementRules`)."""
    h, w = mask.shape
    n = visible.shape[0]
    anything = 0
    for i in range(h):  # the usual case, and the cheapest test: nothing placed there yet
        under = labels[y + i, x : x + w]
        for j in range(w):
            anything |= under[j]
    if anything == 0:
        return 0
    lost[:] = 0
    over = 0
    for i in range(h):
        row, under = mask[i], labels[y + i]
        for j in range(w):
            if row[j]:
                k = under[x + j]
                if k:
                    lost[k] += 1
                    over += 1
    if over == 0:
        return 0
    if over > max_overlap * area:
        return -1
    for k in range(1, n):
        remaining = visible[k] - lost[k]
        if remaining > 0 and (remaining < min_area or remaining < min_fraction * full[k]):
            return -1
    return 1


@njit(cache=True, nogil=True)
def stamp(labels, mask, y, x, label):
    """labels[y + i, x + j] = `label` wherever mask[i, j] (an instance's pixels in the label map)."""
    h, w = mask.shape
    for i in range(h):
        row, out = mask[i], labels[y + i]
        for j in range(w):
            if row[j]:
                out[x + j] = label


@njit(cache=True, nogil=True)
def _box(alpha):
    """Rows [r0, r1) and columns [c0, c1) of the pixels with alpha > 0, grown by one pixel within
    the patch: where every defect patch is cropped to."""
    h, w = alpha.shape
    r0, r1, c0, c1 = h, -1, w, -1
    for i in range(h):
        for j in range(w):
            if alpha[i, j] > _ZERO:
                r0, r1 = min(r0, i), max(r1, i)
                c0, c1 = min(c0, j), max(c1, j)
    return max(0, r0 - 1), min(h, r1 + 2), max(0, c0 - 1), min(w, c1 + 2)


@njit(cache=True, nogil=True)
def pit(h, w, ox, oy, c, s, ia, ib, ka, kb, radius, cos_light, sin_light, contrast):
    """Alpha, gain and offset (cropped, float32) of a pit: a dark floor, darkest in the middle, and
    the inner wall facing the light lit near the rim (see `defects._pit` for the parameters)."""
    alpha, rho2, _, _ = _ellipse_alpha(h, w, ox, oy, c, s, ia, ib, ka, kb)
    oy, ox, radius, cos_light, sin_light = _F(oy), _F(ox), _F(radius), _F(cos_light), _F(sin_light)
    r0, r1, c0, c1 = _box(alpha)
    gain = np.empty((r1 - r0, c1 - c0), np.float32)
    offset = np.empty((r1 - r0, c1 - c0), np.float32)
    lit_k = _F(0.6 * contrast)
    contrast32, k_rim = _F(contrast), _F(1 / 0.28)
    for i in range(r0, r1):
        y = _F(i) + oy
        for j in range(c0, c1):
            x = _F(j) + ox
            r2 = rho2[i, j]
            rho = math.sqrt(r2)
            facing = -(x * cos_light + y * sin_light) / max(rho * radius, _F(1e-3))
            wall = min(max(facing, _ZERO), _ONE) ** _F(1.5)
            wall = wall * min(max(_ONE - abs(rho - _F(0.7)) * k_rim, _ZERO), _ONE)
            dark = contrast32 * min(max(_ONE - _F(0.45) * r2, _ZERO), _ONE) * (_ONE - wall)
            lit = lit_k * wall
            gain[i - r0, j - c0] = _ONE - dark - lit
            offset[i - r0, j - c0] = _F(255.0) * lit
    return np.ascontiguousarray(alpha[r0:r1, c0:c1]), gain, offset


@njit(cache=True, nogil=True)
def dent(h, w, ox, oy, c, s, ia, ib, ka, kb, cos_light, sin_light, contrast):
    """Alpha, gain and offset (cropped, float32) of a dent: depth z = −(1 − ρ²)² inside, brightness
    following the slope that faces the light, its strongest at ±`contrast` (see `defects._dent`)."""
    alpha, rho2, grad_x, grad_y = _ellipse_alpha(h, w, ox, oy, c, s, ia, ib, ka, kb)
    cos_light, sin_light = _F(cos_light), _F(sin_light)
    slope = np.empty((h, w), np.float32)
    steepest = _ZERO
    for i in range(h):
        for j in range(w):
            k = max(_ONE - rho2[i, j], _ZERO) * (grad_x[i, j] * cos_light + grad_y[i, j] * sin_light)
            k = k if alpha[i, j] >= _HALF else _ZERO  # change pixels only inside the dent
            slope[i, j] = k
            steepest = max(steepest, abs(k))
    r0, r1, c0, c1 = _box(alpha)
    scale = _F(contrast / max(np.float64(steepest), 1e-6))
    gain = np.empty((r1 - r0, c1 - c0), np.float32)
    offset = np.empty((r1 - r0, c1 - c0), np.float32)
    for i in range(r0, r1):
        for j in range(c0, c1):
            shade = slope[i, j] * scale
            up, down = max(shade, _ZERO), min(shade, _ZERO)
            gain[i - r0, j - c0] = _ONE - up + down
            offset[i - r0, j - c0] = _F(255.0) * up
    return np.ascontiguousarray(alpha[r0:r1, c0:c1]), gain, offset


@njit(cache=True, nogil=True)
def ribbon(controls, c, s, basis, taper, half_width, pad, height, width):
    """The scratch's outline: the cubic Bézier of `controls` (4×2, x y) turned by the angle of
    cosine `c` and sine `s`, at the n points of `basis` (n×4), fitted to an H×W image with `pad`
    pixels of room (`fit_points`), widened along its normals by `half_width` · `taper` (n) to each
    side. Returns the outline (2n×2: one side, then the other back) and the curve's bounds."""
    turned = np.empty((4, 2))
    for k in range(4):
        turned[k, 0] = controls[k, 0] * c - controls[k, 1] * s
        turned[k, 1] = controls[k, 0] * s + controls[k, 1] * c
    n = basis.shape[0]
    points = np.empty((n, 2))
    for i in range(n):
        for d in range(2):
            points[i, d] = (basis[i, 0] * turned[0, d] + basis[i, 1] * turned[1, d]
                            + basis[i, 2] * turned[2, d] + basis[i, 3] * turned[3, d])
    points, bounds = fit_points(points, pad, height, width)
    outline = np.empty((2 * n, 2))
    for i in range(n):
        # the tangent's direction by central differences, one-sided at the ends
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        tx, ty = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1]
        norm = max(math.hypot(tx, ty), 1e-9)
        nx, ny = -ty / norm, tx / norm
        half = half_width * taper[i]
        outline[i, 0], outline[i, 1] = points[i, 0] + nx * half, points[i, 1] + ny * half
        outline[2 * n - 1 - i, 0], outline[2 * n - 1 - i, 1] = points[i, 0] - nx * half, points[i, 1] - ny * half
    return outline, bounds


@njit(cache=True, nogil=True)
def blob(radius, amps, phases, elongation, tilt, pad, height, width):
    """The stain's outline at 96 polar angles φ: radius · (1 + Σₖ amps[k−1] · cos(k·φ + phases[k−1]))
    (k = 1..6) · elongation^|sin(φ − tilt)|, fitted to an H×W image with `pad` pixels of room
    (`fit_points`). Returns the outline (96×2, x y) and its bounds."""
    n = 96
    outline = np.empty((n, 2))
    for j in range(n):
        phi = j * (2 * math.pi / n)  # as np.linspace(0, 2π, n, endpoint=False)
        r = 0.0
        for k in range(amps.shape[0]):
            r += amps[k] * math.cos((k + 1) * phi + phases[k])
        r = radius * (1.0 + r) * elongation ** abs(math.sin(phi - tilt))
        outline[j, 0], outline[j, 1] = math.cos(phi) * r, math.sin(phi) * r
    return fit_points(outline, pad, height, width)


@njit(cache=True, nogil=True)
def fit_points(points, pad, height, width):
    """`points` (n×2, x y, float64) shrunk in place about the centre of their bounds so that a patch
    drawn around them with `pad` pixels of padding fits inside an H×W image (unchanged when it fits
    already), and their bounds [[least x, least y], [greatest x, greatest y]] (shrinking is
    monotonic, so the bounds shrink with the points exactly)."""
    n = points.shape[0]
    x0, y0, x1, y1 = points[0, 0], points[0, 1], points[0, 0], points[0, 1]
    for i in range(1, n):
        x0, x1 = min(x0, points[i, 0]), max(x1, points[i, 0])
        y0, y1 = min(y0, points[i, 1]), max(y1, points[i, 1])
    room_x, room_y = max(width - 2 * pad - 2, 1.0), max(height - 2 * pad - 2, 1.0)  # floor/ceil add 2
    scale = min(room_x / max(x1 - x0, 1e-6), room_y / max(y1 - y0, 1e-6))
    bounds = np.array([[x0, y0], [x1, y1]])
    if scale < 1.0:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for i in range(n):
            points[i, 0] = cx + (points[i, 0] - cx) * scale
            points[i, 1] = cy + (points[i, 1] - cy) * scale
        for k in range(2):
            bounds[k, 0] = cx + (bounds[k, 0] - cx) * scale
            bounds[k, 1] = cy + (bounds[k, 1] - cy) * scale
    return points, bounds


@njit(cache=True, nogil=True)
def toned(alpha, strength, k, light):
    """Alpha, gain and offset (cropped, float32) of a defect that darkens (under·(1 − s)) or, when
    `light`, lightens (under + (255 − under)·s) by s = k · `strength`; the
    offset of a darkening defect is a 1×1 zero."""
    r0, r1, c0, c1 = _box(alpha)
    k = _F(k)
    gain = np.empty((r1 - r0, c1 - c0), np.float32)
    offset = np.zeros((r1 - r0, c1 - c0) if light else (1, 1), np.float32)
    for i in range(r0, r1):
        for j in range(c0, c1):
            s = k * strength[i, j]
            gain[i - r0, j - c0] = _ONE - s
            if light:
                offset[i - r0, j - c0] = _F(255.0) * s
    return np.ascontiguousarray(alpha[r0:r1, c0:c1]), gain, offset


@njit(cache=True, nogil=True)
def stain(alpha, inner, smooth, rim, opacity, tint_gain, tint_offset):
    """Alpha, gain and offset (cropped; gain and offset h×w×3) of a stain: strength
    s = clip(opacity · (smooth + rim · clip(2·(1 − inner), 0, 1)), 0, 1), and per channel
    gain 1 + s·tint_gain[c], offset s·tint_offset[c] (see `defects._stain`)."""
    r0, r1, c0, c1 = _box(alpha)
    rim, opacity = _F(rim), _F(opacity)
    gain = np.empty((r1 - r0, c1 - c0, 3), np.float32)
    offset = np.empty((r1 - r0, c1 - c0, 3), np.float32)
    for i in range(r0, r1):
        for j in range(c0, c1):
            edge = min(max((_ONE - inner[i, j]) * _F(2.0), _ZERO), _ONE) * rim
            s = min(max(opacity * (smooth[i, j] + edge), _ZERO), _ONE)
            for c in range(3):
                gain[i - r0, j - c0, c] = s * tint_gain[c] + _ONE
                offset[i - r0, j - c0, c] = s * tint_offset[c]
    return np.ascontiguousarray(alpha[r0:r1, c0:c1]), gain, offset


@njit(cache=True, nogil=True)
def shade(field, y, x, flip_rows, rows, cols, dark, scale):
    """An H×W×3 uint8 texture from the H×W window at (`y`, `x`) of `field` (uint8, C-contiguous),
    its rows in reverse order when `flip_rows`: each value v lit by the gain rows[i] + cols[j] (the
    image's lighting, H and W float32) in uint8 steps of 1/128, g = saturate(round(128 · gain)) and
    m = saturate(round(v · g / 128)), then coloured through the ramp of each channel c,
    saturate(round(|fma(m, scale[c], dark[c])|)) in float32, rounded half to even. One pass over
    the image (the gain of a row is worked out beside it): what took a resized gain map and five
    OpenCV passes."""
    h, w = rows.shape[0], cols.shape[0]
    out = np.empty((h, w, 3), np.uint8)
    source, pixels = field.reshape(-1), out.reshape(-1)
    lo, k = dark.astype(np.float32), scale.astype(np.float32)
    gains = np.empty(w, np.uint8)
    for i in range(h):
        _gain_row(rows[i], cols, gains)
        start = (y + (h - 1 - i if flip_rows else i)) * field.shape[1] + x
        _shade_row(source[start : start + w], gains, pixels[3 * i * w : 3 * (i + 1) * w],
                   lo[0], lo[1], lo[2], k[0], k[1], k[2])
    return out


@njit(cache=True, nogil=True)
def _gain_row(row, cols, gains):
    top, one = _F(255.0), _F(128.0)
    for j in range(cols.shape[0]):
        g = min(max((row + cols[j]) * one, _ZERO), top)
        gains[j] = np.uint8((g + _ROUND) - _ROUND)


@njit(cache=True, nogil=True)
def _shade_row(values, gains, pixels, lo0, lo1, lo2, k0, k1, k2):
    top, step = _F(255.0), _F(1.0 / 128)
    for j in range(values.shape[0]):
        m = min(_F(values[j]) * _F(gains[j]) * step, top)  # the product is exact: a power-of-two step
        m = (m + _ROUND) - _ROUND
        pixels[3 * j] = np.uint8((min(abs(_fma(m, k0, lo0)), top) + _ROUND) - _ROUND)
        pixels[3 * j + 1] = np.uint8((min(abs(_fma(m, k1, lo1)), top) + _ROUND) - _ROUND)
        pixels[3 * j + 2] = np.uint8((min(abs(_fma(m, k2, lo2)), top) + _ROUND) - _ROUND)


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c in float32, rounded once (LLVM's fma: the CPU's instruction where it has one)."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fma = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fma, args)

    return types.float32(types.float32, types.float32, types.float32), codegen
