"""Seeing the data: boxes, mask outlines and class names drawn over a grid of images."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
from tqdm import tqdm

from vision_synth import masks as mask_ops
from vision_synth.coco.reader import load_coco
from vision_synth.imageio import read_image, write_image

# distinct colours (tab20-like), indexed by category id
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
], np.uint8)


def color_of(category_id: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in PALETTE[category_id % len(PALETTE)])


def draw_annotations(image: np.ndarray, masks: np.ndarray, category_ids, names: dict[int, str],
                     scale: float = 1.0) -> np.ndarray:
    """A copy of `image` resized by `scale`, with each instance's mask tinted and outlined, its box
    drawn and its class name written."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = cv2.resize(image, size, interpolation=cv2.INTER_AREA).copy()
    boxes = mask_ops.derive_boxes(masks)
    for mask, cat, box in zip(masks, category_ids, boxes):
        color = color_of(int(cat))
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        tint = canvas[small > 0].astype(np.float32) * 0.6 + np.array(color, np.float32) * 0.4
        canvas[small > 0] = tint.astype(np.uint8)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, color, 1, cv2.LINE_AA)
        x, y, bw, bh = (box * scale).round().astype(int)
        cv2.rectangle(canvas, (x, y), (x + max(bw - 1, 0), y + max(bh - 1, 0)), color, 1)
        label = names.get(int(cat), str(int(cat)))
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
        ty = max(y - 2, th + 1)
        cv2.rectangle(canvas, (x, ty - th - 1), (x + tw + 1, ty + 1), color, -1)
        cv2.putText(canvas, label, (x + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def render_grid(items: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]], images_dir: Path,
                names: dict[int, str], out_png: Path, max_images: int = 16, tile: int = 256,
                columns: int = 4, show_progress: bool = False) -> Path:
    """Write a PNG grid of (COCO image record, its annotations) pairs, the first `max_images` of
    `items` only (it may be a stream over a large dataset); returns the PNG's path."""
    tiles = []
    first = itertools.islice(items, max_images)
    for image, anns in tqdm(first, desc="preview", unit="image", disable=not show_progress):
        pixels = read_image(Path(images_dir) / image["file_name"])
        h, w = image["height"], image["width"]
        masks = np.stack([mask_ops.segmentation_to_mask(a["segmentation"], h, w) for a in anns]) if anns \
            else np.zeros((0, h, w), bool)
        scale = tile / max(pixels.shape[:2])
        drawn = draw_annotations(pixels, masks, [a["category_id"] for a in anns], names, scale)
        padded = np.full((tile, tile, 3), 32, np.uint8)
        padded[: drawn.shape[0], : drawn.shape[1]] = drawn
        tiles.append(padded)
    if not tiles:
        tiles = [np.full((tile, tile, 3), 32, np.uint8)]
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    gap = 4
    grid = np.full((rows * (tile + gap) + gap, columns * (tile + gap) + gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[gap + r * (tile + gap) : gap + r * (tile + gap) + tile, gap + c * (tile + gap) : gap + c * (tile + gap) + tile] = t
    write_image(out_png, grid, "png", png_compression=None)
    return out_png


def render_preview(annotations: Path, images_dir: Path, out_png: Path, max_images: int = 16,
                   tile: int = 256, columns: int = 4, show_progress: bool = False) -> Path:
    """Write a PNG grid of the first `max_images` images of a COCO file with their labels drawn."""
    dataset = load_coco(annotations, images_dir)
    items = ((image, [a for a in dataset.annotations_of(image["id"]) if a.get("segmentation")])
             for image in dataset.images)
    return render_grid(items, images_dir, dataset.category_names, out_png, max_images, tile, columns, show_progress)
