"""Draw the small RGBA sprites shipped in scenes/tabletop_objects/sprites/ (run once; output committed).

Shapes are shaded procedurally (sphere, cube, mug, bottle) so the scene needs no downloaded assets.
Usage: python tools/make_tabletop_sprites.py [--out scenes/tabletop_objects/sprites]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = 96
SS = 4  # supersampling for smooth alpha edges


def _finish(rgb: np.ndarray, alpha: np.ndarray) -> Image.Image:
    rgb = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    rgba = np.dstack([np.clip(rgb, 0, 255), np.clip(alpha * 255, 0, 255)]).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def ball(color, rng) -> Image.Image:
    n = SIZE * SS
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    r = n * 0.46
    dx, dy = (x - n / 2) / r, (y - n / 2) / r
    d2 = dx**2 + dy**2
    alpha = (d2 <= 1).astype(np.float32)
    nz = np.sqrt(np.clip(1 - d2, 0, 1))
    light = np.array([-0.5, -0.6, 0.62]); light /= np.linalg.norm(light)
    lam = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0, 1)
    spec = lam ** 40
    rgb = np.array(color, np.float32) * (0.25 + 0.75 * lam)[..., None] + 255 * 0.6 * spec[..., None]
    return _finish(rgb, alpha)


def cube(color, rng) -> Image.Image:
    n = SIZE * SS
    rgb = np.zeros((n, n, 3), np.float32)
    alpha = np.zeros((n, n), np.float32)
    c = np.array(color, np.float32)
    s = n * 0.28
    cx, cy = n / 2, n / 2
    top = np.array([[cx, cy - s * 1.6], [cx + s * 1.55, cy - s * 0.8], [cx, cy], [cx - s * 1.55, cy - s * 0.8]])
    left = np.array([[cx - s * 1.55, cy - s * 0.8], [cx, cy], [cx, cy + s * 1.6], [cx - s * 1.55, cy + s * 0.8]])
    right = np.array([[cx, cy], [cx + s * 1.55, cy - s * 0.8], [cx + s * 1.55, cy + s * 0.8], [cx, cy + s * 1.6]])
    for poly, shade in ((top, 1.0), (left, 0.7), (right, 0.5)):
        pts = poly.round().astype(np.int32)
        cv2.fillPoly(rgb, [pts], (c * shade).tolist())
        cv2.fillPoly(alpha, [pts], 1.0)
        cv2.polylines(rgb, [pts], True, (c * shade * 0.8).tolist(), SS)
    return _finish(rgb, alpha)


def mug(color, rng) -> Image.Image:
    n = SIZE * SS
    rgb = np.zeros((n, n, 3), np.float32)
    alpha = np.zeros((n, n), np.float32)
    c = np.array(color, np.float32)
    x0, x1, y0, y1 = int(n * 0.18), int(n * 0.68), int(n * 0.22), int(n * 0.85)
    ew = (x1 - x0) // 2
    eh = int(n * 0.07)
    cxm = (x0 + x1) // 2
    # handle: a thick ring on the right
    cv2.ellipse(alpha, (x1, (y0 + y1) // 2), (int(n * 0.14), int(n * 0.18)), 0, -90, 90, 1.0, int(n * 0.05))
    cv2.ellipse(rgb, (x1, (y0 + y1) // 2), (int(n * 0.14), int(n * 0.18)), 0, -90, 90, (c * 0.75).tolist(), int(n * 0.05))
    # body: cylinder shaded across its width
    xs = np.arange(x0, x1, dtype=np.float32)
    t = (xs - x0) / (x1 - x0) * 2 - 1
    shade = 0.35 + 0.65 * np.sqrt(np.clip(1 - t**2, 0, 1)) * (0.75 - 0.25 * t)
    rgb[y0:y1, x0:x1] = c * shade[None, :, None]
    alpha[y0:y1, x0:x1] = 1
    cv2.ellipse(alpha, (cxm, y1), (ew, eh), 0, 0, 180, 1.0, -1)
    cv2.ellipse(rgb, (cxm, y1), (ew, eh), 0, 0, 180, (c * 0.5).tolist(), -1)
    # rim and dark inside
    cv2.ellipse(alpha, (cxm, y0), (ew, eh), 0, 0, 360, 1.0, -1)
    cv2.ellipse(rgb, (cxm, y0), (ew, eh), 0, 0, 360, (c * 0.9).tolist(), -1)
    cv2.ellipse(rgb, (cxm, y0), (ew - SS * 3, eh - SS * 2), 0, 0, 360, (c * 0.25).tolist(), -1)
    return _finish(rgb, alpha)


def bottle(color, rng) -> Image.Image:
    n = SIZE * SS
    rgb = np.zeros((n, n, 3), np.float32)
    alpha = np.zeros((n, n), np.float32)
    c = np.array(color, np.float32)
    cx = n // 2
    half_w = np.zeros(n, np.float32)
    ys = np.arange(n)
    body_top, body_bottom = int(n * 0.42), int(n * 0.94)
    neck_top = int(n * 0.14)
    half_w[body_top:body_bottom] = n * 0.17
    shoulder = (ys >= int(n * 0.3)) & (ys < body_top)
    half_w[shoulder] = n * (0.06 + 0.11 * (ys[shoulder] - n * 0.3) / (body_top - n * 0.3))
    half_w[neck_top:int(n * 0.3)] = n * 0.06
    x = np.arange(n, dtype=np.float32)
    for yy in range(neck_top, body_bottom):
        hw = half_w[yy]
        inside = np.abs(x - cx) <= hw
        t = (x[inside] - cx) / max(hw, 1)
        shade = 0.4 + 0.6 * np.sqrt(np.clip(1 - t**2, 0, 1)) * (0.8 - 0.2 * t)
        rgb[yy, inside] = c * shade[:, None] + 120 * (np.abs(t + 0.45) < 0.08)[:, None]
        alpha[yy, inside] = 1
    # cap
    cap = np.array([220, 220, 225], np.float32) * 0.8
    rgb[int(n * 0.07):neck_top + SS, cx - int(n * 0.07):cx + int(n * 0.07)] = cap
    alpha[int(n * 0.07):neck_top + SS, cx - int(n * 0.07):cx + int(n * 0.07)] = 1
    return _finish(rgb, alpha)


SHAPES = {"ball": ball, "cube": cube, "mug": mug, "bottle": bottle}
COLORS = [(200, 40, 40), (40, 110, 200), (230, 180, 30), (60, 160, 80), (150, 70, 170), (235, 235, 230)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "scenes/tabletop_objects/sprites"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for name, draw in SHAPES.items():
        folder = Path(args.out) / name
        folder.mkdir(parents=True, exist_ok=True)
        for k, color in enumerate(COLORS[:3] if name != "ball" else COLORS[2:5]):
            draw(color, rng).save(folder / f"{name}_{k}.png", optimize=True)
    print(f"sprites written under {args.out}")


if __name__ == "__main__":
    main()
