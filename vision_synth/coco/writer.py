"""Write samples as COCO: images (atomic), per-process shards of records, and a streaming merge into
annotations.json whose ids do not depend on how the work was split.

A shard is a JSON-lines file, one line per sample ({"index", "image", "annotations"}), appended only
after the sample's image file is in place; a line cut short by a crash is ignored on reading.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from vision_synth import masks as mask_ops
from vision_synth.types import Sample

IMAGE_SUFFIX = {"jpeg": "jpg", "png": "png"}


def image_file_name(index: int, fmt: str) -> str:
    """File name of sample `index`: its image id (index + 1), zero-padded."""
    return f"{index + 1:09d}.{IMAGE_SUFFIX[fmt]}"


def encode_image(image: np.ndarray, fmt: str, quality: int = 92) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"could not encode a {fmt} image")
    return buf.tobytes()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files owner-only


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temp file beside `path`, then rename: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            os.fchmod(f.fileno(), FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _segmentation(mask: np.ndarray, rle: dict[str, Any], mode: str) -> tuple[Any, int, list[int]]:
    """The segmentation to write and the area and box of exactly that (written) mask."""
    if mode == "polygon":
        polygons = mask_ops.mask_to_polygons(mask)
        raster = mask_ops.polygons_to_mask(polygons, *mask.shape)
        if raster.any():
            area = int(raster.sum())
            return polygons, area, [int(v) for v in mask_ops.derive_boxes(raster[None])[0]]
        # too thin for a polygon to cover a pixel: keep the exact RLE for this instance
    area, box = mask_ops.rle_area_and_box(rle)
    return rle, area, box


def sample_records(sample: Sample, file_name: str, segmentation: str = "rle", amodal: bool = False,
                   config_hash: str | None = None) -> dict[str, Any]:
    """The shard record of a sample: its COCO image record and annotations (ids assigned at merge).
    bbox and area are derived here, from the mask as written."""
    inst = sample.instances
    height, width = sample.image.shape[:2]
    prov = sample.provenance
    image = {
        "id": sample.index + 1,
        "file_name": file_name,
        "width": width,
        "height": height,
        "synthetic": prov.synthetic,
        "generator": prov.generator,
        "model": prov.model,
        "seed": sample.seed,
        "index": sample.index,
        "config_hash": config_hash,
    }
    if prov.model_hash:
        image["model_hash"] = prov.model_hash
    if prov.background:
        image["background"] = prov.background
    if prov.stages:
        image["stages"] = list(prov.stages)
    if prov.prompt:
        image["prompt"] = prov.prompt
    rles = mask_ops.encode_rle(inst.masks)
    amodal_rles = mask_ops.encode_rle(inst.amodal_masks) if amodal and inst.amodal_masks is not None else None
    occlusion = inst.attributes.get("occlusion")
    sources = inst.attributes.get("source")
    approximate = inst.attributes.get("approximate")
    annotations = []
    for k, rle in enumerate(rles):
        seg, area, box = _segmentation(inst.masks[k], rle, segmentation)
        if area == 0:
            continue  # an empty mask is not an instance
        ann = {
            "image_id": sample.index + 1,
            "category_id": int(inst.category_ids[k]),
            "bbox": box,
            "area": area,
            "segmentation": seg,
            "iscrowd": 0,
            "synthetic": prov.synthetic,
            "source": str(sources[k]) if sources is not None else prov.generator,
        }
        if occlusion is not None:
            ann["occlusion"] = round(float(occlusion[k]), 4)
        if approximate is not None and approximate[k]:
            ann["approximate"] = True  # from a box-only input: the mask is a transformed box, not the shape
        if amodal_rles is not None:
            ann["amodal_segmentation"] = amodal_rles[k]
        annotations.append(ann)
    return {"index": sample.index, "image": image, "annotations": annotations}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class ShardWriter:
    """Appends one record line per sample; call `add` only after the sample's image is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def add(self, record: dict[str, Any]) -> None:
        self._file.write(_dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_shard(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a shard in file order; a final line cut short by a crash is skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return  # partial last line: the process died while writing it
            yield json.loads(line)


def done_indices(shard_paths: Iterable[Path]) -> set[int]:
    return {rec["index"] for p in shard_paths for rec in read_shard(p)}


def merged_records(shard_paths: list[Path], limit: int | None = None) -> Iterator[dict[str, Any]]:
    """All shard records in index order, each index once (shards are each in increasing order)."""
    last = None
    for rec in heapq.merge(*(read_shard(p) for p in shard_paths), key=lambda r: r["index"]):
        if limit is not None and rec["index"] >= limit:
            return
        if rec["index"] != last:
            last = rec["index"]
            yield rec


def write_annotations(out_path: Path, shard_paths: list[Path], info: dict[str, Any],
                      categories: list[dict[str, Any]], limit: int | None = None) -> dict[int, int]:
    """Stream the shards into one COCO annotations.json (atomically); annotation ids run from 1 in
    index order. Holds one record at a time, not the dataset. Samples with index >= `limit` are
    left out. Returns instance counts per category id."""
    counts: dict[int, int] = {c["id"]: 0 for c in categories}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write('{"info":' + _dumps(info) + ',"licenses":[],"categories":' + _dumps(categories))
            f.write(',"images":[')
            for n, rec in enumerate(merged_records(shard_paths, limit)):
                f.write(("\n" if n == 0 else ",\n") + _dumps(rec["image"]))
            f.write('\n],"annotations":[')
            ann_id = 0
            for rec in merged_records(shard_paths, limit):
                for ann in rec["annotations"]:
                    ann_id += 1
                    counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
                    f.write(("\n" if ann_id == 1 else ",\n") + _dumps({"id": ann_id, **ann}))
            f.write("\n]}\n")
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts
