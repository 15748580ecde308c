"""Mask conversions over pycocotools: boxes and areas from masks, RLE, polygons."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h): the pixel extent of a 2-D mask's nonzero pixels (w = x_max - x_min + 1);
    (0, 0, 0, 0) when it has none. The one mask-extent function: every box and crop comes from it."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        mask = mask != 0
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    return int(x), int(y), int(w), int(h)


def box_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """Rows and columns of `mask_box` grown by `margin` pixels each side (within the mask's
    shape), for cropping arrays to a mask; empty slices when the mask has no pixel."""
    x, y, w, h = mask_box(mask)
    if w == 0:
        return slice(0, 0), slice(0, 0)
    height, width = np.shape(mask)[:2]
    return (slice(max(0, y - margin), min(height, y + h + margin)),
            slice(max(0, x - margin), min(width, x + w + margin)))


def derive_boxes(masks: np.ndarray) -> np.ndarray:
    """N×4 int64 [x, y, w, h]: the `mask_box` of each mask of an N×H×W stack; zeros if empty."""
    masks = np.asarray(masks, dtype=bool)
    boxes = np.zeros((masks.shape[0], 4), np.int64)
    for k, mask in enumerate(masks):
        boxes[k] = mask_box(mask)
    return boxes


def raster_area_and_box(mask: np.ndarray) -> tuple[int, list[int]]:
    """Pixel count and [x, y, w, h] of a 2-D bool mask: what COCO's `area` and `bbox` hold for it."""
    return int(np.count_nonzero(mask)), list(mask_box(mask))


def polygons_area_and_box(polygons: list[list[float]], height: int, width: int) -> tuple[np.ndarray, int, list[int]]:
    """The raster of COCO polygons as pycocotools draws them, with its area and box: the area and box
    of exactly the written segmentation (a polygon traces pixel centres, so it differs from the mask)."""
    raster = polygons_to_mask(polygons, height, width)
    return (raster, *raster_area_and_box(raster))


def mask_areas(masks: np.ndarray) -> np.ndarray:
    """Pixel count of each mask (N×H×W, N may be 0), int64."""
    masks = np.asarray(masks, dtype=bool)
    return np.fromiter((np.count_nonzero(m) for m in masks), np.int64, count=len(masks))


def column_runs(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts of a mask (column-major runs, starting with zeros).

    Only the columns the mask touches are scanned; the empty columns on either side become one
    run each, so small masks in large images cost little.
    """
    height, width = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return [height * width]
    x0, x1 = int(cols[0]), int(cols[-1])
    strip = mask[:, x0 : x1 + 1].ravel(order="F")
    change = np.flatnonzero(strip[1:] != strip[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [strip.size]))).tolist()
    lead, trail = x0 * height, (width - 1 - x1) * height
    counts = [lead, *runs] if strip[0] else [lead + runs[0], *runs[1:]]
    if trail:
        if strip[-1]:
            counts.append(trail)
        else:
            counts[-1] += trail
    return counts


def encode_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Compressed COCO RLE of each mask (N×H×W), with `counts` as str so it goes into JSON."""
    masks = np.asarray(masks, dtype=bool)
    if masks.shape[0] == 0:
        return []
    height, width = masks.shape[1:]
    rles = coco_mask.frPyObjects([{"size": [height, width], "counts": column_runs(m)} for m in masks], height, width)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _to_pycoco_rle(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """H×W bool mask from a compressed or uncompressed COCO RLE."""
    if isinstance(rle["counts"], list):
        h, w = rle["size"]
        rle = coco_mask.frPyObjects(rle, h, w)
    return coco_mask.decode(_to_pycoco_rle(rle)).astype(bool)


def rle_area_and_box(rle: dict[str, Any]) -> tuple[int, list[int]]:
    """Area (pixel count) and [x, y, w, h] of a compressed RLE, as pycocotools computes them."""
    (area,), (box,) = rle_areas_and_boxes([rle])
    return area, box


def rle_areas_and_boxes(rles: list[dict[str, Any]]) -> tuple[list[int], list[list[int]]]:
    """`rle_area_and_box` of each of `rles`, in one pycocotools call each for areas and boxes."""
    if not rles:
        return [], []
    pycoco = [_to_pycoco_rle(r) for r in rles]
    return coco_mask.area(pycoco).astype(int).tolist(), coco_mask.toBbox(pycoco).astype(int).tolist()


def uncompress_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed RLE ({'size', 'counts': [ints]}), column-major as COCO defines it."""
    mask = np.asarray(mask, dtype=bool)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": column_runs(mask)}


def mask_to_polygons(mask: np.ndarray, largest_only: bool = False) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons [x1, y1, x2, y2, ...], each of at least 3 points.

    Polygons cannot hold holes and trace pixel centres, so they approximate the mask; RLE is exact.
    """
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) < 3:
            # a 1- or 2-pixel sliver: outline its pixel square so it stays a valid polygon
            x, y, w, h = cv2.boundingRect(contour)
            contour = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
        polygons.append(np.asarray(contour, np.float64).reshape(-1, 2))
    if largest_only and polygons:
        polygons = [max(polygons, key=lambda p: cv2.contourArea(p.astype(np.float32)))]
    return [p.ravel().tolist() for p in polygons]


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """H×W bool raster of COCO polygons, as pycocotools draws them."""
    if not polygons:
        return np.zeros((height, width), bool)
    rles = coco_mask.frPyObjects(polygons, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """H×W bool mask of any COCO segmentation: polygons, compressed or uncompressed RLE."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} differs from image size {[height, width]}")
        return decode_rle(segmentation)
    raise ValueError("segmentation is neither a polygon list nor an RLE dict")
