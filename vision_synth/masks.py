"""Mask conversions over pycocotools: boxes and areas from masks, RLE, polygons."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h): the pixel extent of a 2-D mask's nonzero pixels (w = x_max - x_min + 1);
    (0, 0, 0, 0) when it has none. The one mask-extent function: every box and crop comes from it
    (save the compiled defect loops, which crop their own patches in `scene.kernels._box`)."""
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


RLE_DIGITS = 7  # characters of one run length at most: 35 bits, above pycocotools' 32-bit counts


def rle_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths a compressed COCO RLE string holds (pycocotools' rleFrString, vectorised), int64.
    ValueError when the text is not such a string: pycocotools itself decodes any bytes, and a string
    whose runs do not add up to the image writes past its buffer or leaves pixels unset."""
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except UnicodeEncodeError:
        raise ValueError("RLE counts hold characters outside the COCO alphabet ('0' to 'o')") from None
    c = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE counts hold characters outside the COCO alphabet ('0' to 'o')")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE counts end in the middle of a run length")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    digits = ends - starts + 1
    if digits.max() > RLE_DIGITS:
        raise ValueError("RLE counts hold a run length too long for any image")
    number = np.repeat(np.arange(ends.size), digits)
    shift = 5 * (np.arange(c.size) - starts[number])
    values = np.bincount(number, weights=(c & 0x1F) << shift, minlength=ends.size).astype(np.int64)
    negative = (c[ends] & 0x10) != 0  # the last digit's sign bit: two's complement over its 5·k bits
    values[negative] -= np.left_shift(1, 5 * digits[negative])
    # from the fourth run on, each is stored as the difference to the run two before it
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def check_rle(rle: dict[str, Any], height: int, width: int) -> None:
    """ValueError unless `rle` (compressed or uncompressed) has runs >= 0 that cover height×width."""
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError("RLE counts must be whole numbers >= 0")
        total = sum(counts)
    else:
        runs = rle_counts(counts)
        if (runs < 0).any():
            raise ValueError("RLE counts hold a negative run length")
        total = int(runs.sum())
    if total != height * width:
        raise ValueError(f"RLE counts cover {total} pixels, not {height}×{width} = {height * width}")


def check_polygons(polygons: list, height: int, width: int) -> None:
    """ValueError unless `polygons` are lists of at least 3 finite points (x, y) within the image grown
    by its own size on each side: pycocotools rasterises a polygon edge by edge at 5× its scale, so a
    far point (1e10) crashes or exhausts memory."""
    for k, poly in enumerate(polygons):
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise ValueError(f"polygon {k} is not a list of at least 3 points (x1, y1, x2, y2, ...)")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise ValueError(f"polygon {k} holds a value that is not a number")
        xy = np.asarray(poly, np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            raise ValueError(f"polygon {k} holds a value that is not a finite number")
        far = (xy[:, 0] < -width) | (xy[:, 0] > 2 * width) | (xy[:, 1] < -height) | (xy[:, 1] > 2 * height)
        if far.any():
            x, y = xy[np.argmax(far)]
            raise ValueError(f"polygon {k} has the point ({x:g}, {y:g}) far outside the {width}×{height} image")


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
    check_polygons(polygons, height, width)
    rles = coco_mask.frPyObjects(polygons, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """H×W bool mask of any COCO segmentation: polygons, compressed or uncompressed RLE."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} differs from image size {[height, width]}")
        check_rle(segmentation, height, width)
        return decode_rle(segmentation)
    raise ValueError("segmentation is neither a polygon list nor an RLE dict")
