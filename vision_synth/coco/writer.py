"""Write samples as COCO: images (atomic), per-process shards of records, and a streaming merge into
annotations.json whose ids do not depend on how the work was split.

A shard is a JSON-lines file, one line per sample ({"index", "image", "annotations"}), appended only
after the sample's image file is in place; a line cut short by a crash is ignored on reading.
"""

from __future__ import annotations

import heapq
import json
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from vision_synth import masks as mask_ops
from vision_synth.files import atomic_open, dumps_json, write_atomic  # noqa: F401 (write_atomic: still imported from here by quality/, runner, detector)
from vision_synth.imageio import IMAGE_SUFFIX
from vision_synth.types import Sample


def image_file_name(index: int, fmt: str) -> str:
    """File name of sample `index`: its image id (index + 1), zero-padded."""
    return f"{index + 1:09d}.{IMAGE_SUFFIX[fmt]}"


def _segmentation(mask: np.ndarray, rle: dict[str, Any], rle_area: int, rle_box: list[int],
                  mode: str) -> tuple[Any, int, list[int]]:
    """The segmentation to write and the area and box of exactly that (written) mask; `rle_area` and
    `rle_box` are those of `rle`."""
    if mode == "polygon":
        polygons = mask_ops.mask_to_polygons(mask)
        _, area, box = mask_ops.polygons_area_and_box(polygons, *mask.shape)
        if area:
            return polygons, area, box
        # too thin for a polygon to cover a pixel: keep the exact RLE for this instance
    return rle, rle_area, rle_box


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
    occlusion = None if occlusion is None else occlusion.tolist()
    sources = inst.attributes.get("source")
    approximate = inst.attributes.get("approximate")
    category_ids = inst.category_ids.tolist()
    annotations = []
    for k, (rle, rle_area, rle_box) in enumerate(zip(rles, *mask_ops.rle_areas_and_boxes(rles))):
        seg, area, box = _segmentation(inst.masks[k], rle, rle_area, rle_box, segmentation)
        if area == 0:
            continue  # an empty mask is not an instance
        ann = {
            "image_id": sample.index + 1,
            "category_id": category_ids[k],
            "bbox": box,
            "area": area,
            "segmentation": seg,
            "iscrowd": 0,
            "synthetic": prov.synthetic,
            "source": str(sources[k]) if sources is not None else prov.generator,
        }
        if occlusion is not None:
            ann["occlusion"] = round(occlusion[k], 4)
        if approximate is not None and approximate[k]:
            ann["approximate"] = True  # from a box-only input: the mask is a transformed box, not the shape
        if amodal_rles is not None:
            ann["amodal_segmentation"] = amodal_rles[k]
        annotations.append(ann)
    return {"index": sample.index, "image": image, "annotations": annotations}


class ShardWriter:
    """Appends one record line per sample; call `add` only after the sample's image is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def add(self, record: dict[str, Any]) -> None:
        self._file.write(dumps_json(record) + "\n")
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


def write_coco(out_path: Path, info: dict[str, Any], categories: list[dict[str, Any]],
               images: Iterable[dict[str, Any]], annotations: Iterable[dict[str, Any]]) -> None:
    """A COCO instances file, atomically, one image or annotation record per line (each dumped
    compactly as it is given); `images` and `annotations` are consumed once, in that order, so they
    may be generators that hold one record at a time."""
    with atomic_open(out_path, "w") as f:
        f.write(_head(info, categories))
        lines = _ArrayLines(f)
        for image in images:
            lines.add(image)
        f.write(_BETWEEN)
        lines = _ArrayLines(f)
        for ann in annotations:
            lines.add(ann)
        f.write(_TAIL)


def _head(info: dict[str, Any], categories: list[dict[str, Any]]) -> str:
    return '{"info":' + dumps_json(info) + ',"licenses":[],"categories":' + dumps_json(categories) + ',"images":['


_BETWEEN, _TAIL = '\n],"annotations":[', "\n]}\n"


class _ArrayLines:
    """Records written to `file` as the body of a JSON array, one compact record a line."""

    def __init__(self, file: IO[str]) -> None:
        self.file, self.separator = file, "\n"

    def add(self, record: dict[str, Any]) -> None:
        self.file.write(self.separator + dumps_json(record))
        self.separator = ",\n"


def write_annotations(out_path: Path, shard_paths: list[Path], info: dict[str, Any],
                      categories: list[dict[str, Any]], limit: int | None = None) -> dict[int, int]:
    """Stream the shards into one COCO annotations.json (atomically), the file `write_coco` writes;
    annotation ids run from 1 in index order. Reads the shards once, holding one record at a time:
    the annotations wait in a temporary file beside the output while the images are written, then
    are copied after them. Samples with index >= `limit` are left out. Returns instance counts per
    category id."""
    counts: dict[int, int] = {c["id"]: 0 for c in categories}
    out_path = Path(out_path)
    with atomic_open(out_path, "w") as f, tempfile.TemporaryFile("w+", encoding="utf-8", dir=out_path.parent) as side:
        f.write(_head(info, categories))
        images, annotations = _ArrayLines(f), _ArrayLines(side)
        ann_id = 0
        for rec in merged_records(shard_paths, limit):
            images.add(rec["image"])
            for ann in rec["annotations"]:
                ann_id += 1
                counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
                annotations.add({"id": ann_id, **ann})
        f.write(_BETWEEN)
        side.seek(0)
        shutil.copyfileobj(side, f)
        f.write(_TAIL)
    return counts
