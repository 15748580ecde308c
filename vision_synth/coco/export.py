"""Export a COCO dataset for other training tools: YOLO / YOLO-seg labels with ultralytics' data.yaml,
or COCO with polygons or uncompressed RLE (for tools that reject compressed RLE).

Split-aware: when the dataset folder has split files (see coco/split.py) each split is exported,
otherwise the whole annotations.json. The export is built in a hidden folder beside OUT and renamed
into place when complete, so OUT appears only whole.

YOLO layout (ultralytics finds a label by replacing /images/ with /labels/ in the image path):
  OUT/data.yaml  OUT/images/{split}/NAME.ext  OUT/labels/{split}/NAME.txt
Class index k is the k-th category in id order. Box lines: `k cx cy w h`, segment lines:
`k x1 y1 x2 y2 ...`, all normalised to [0, 1] by the image size.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from vision_synth import masks as mask_ops
from vision_synth.coco.reader import CocoDataset, load_coco
from vision_synth.coco.split import dataset_paths, existing_splits
from vision_synth.errors import DatasetError, VisionSynthError
from vision_synth.files import staged_output, write_atomic, write_json

FORMATS = ("yolo", "yolo-seg", "coco")
POLYGON_MODES = ("largest", "all")
COCO_SEGMENTATIONS = ("polygon", "rle-uncompressed")
LINK_MODES = (None, "hard", "sym")


def place_file(src: Path, dst: Path, link: str | None = None) -> None:
    """Copy `src` to `dst`, or hard-link (`link="hard"`) or symlink it (`"sym"`, absolute target)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link is None:
        shutil.copyfile(src, dst)
    elif link == "hard":
        try:
            os.link(src, dst)
        except OSError as exc:
            raise DatasetError(f"{dst}: cannot hard-link {src} ({exc.strerror}); use --symlink or copy") from None
    elif link == "sym":
        os.symlink(Path(src).resolve(), dst)
    else:
        raise ValueError(f"link must be one of {LINK_MODES}, got {link!r}")


def exported_segmentation(mask: np.ndarray, mode: str, largest_only: bool = False) -> tuple[Any, int, list[int]]:
    """A segmentation in `mode` ("polygon" or "rle-uncompressed") with the area and box of exactly the
    mask it encodes: a polygon rasterises to a slightly different mask than the source RLE."""
    if mode == "polygon":
        polygons = mask_ops.mask_to_polygons(mask, largest_only=largest_only)
        _, area, box = mask_ops.polygons_area_and_box(polygons, *mask.shape)
        if area:
            return polygons, area, box
        # too thin for a polygon to cover a pixel: the exact mask, in the form these tools read
    elif mode != "rle-uncompressed":
        raise ValueError(f"segmentation must be one of {COCO_SEGMENTATIONS}, got {mode!r}")
    return (mask_ops.uncompress_rle(mask), *mask_ops.raster_area_and_box(mask))


def join_polygon_parts(parts: list[np.ndarray]) -> np.ndarray:
    """One closed outline through several polygon parts (each K×2), joined by zero-width bridges
    between their closest vertices, as ultralytics' JSON2YOLO does for multi-part segments."""
    if len(parts) == 1:
        return parts[0]
    # from the last part backwards: a part is bridged to the outline built so far at their closest
    # pair of vertices, and the walk goes out along a bridge and comes back along it
    loop = parts[-1]
    for part in reversed(parts[:-1]):
        dist = ((part[:, None, :] - loop[None, :, :]) ** 2).sum(axis=2)
        a, b = np.unravel_index(np.argmin(dist), dist.shape)
        child = np.concatenate([np.roll(loop, -b, axis=0), loop[b : b + 1]])  # starts and ends at b
        loop = np.concatenate([part[: a + 1], child, part[a:]])
    return loop


def yolo_lines(dataset: CocoDataset, image: dict[str, Any], class_index: dict[int, int], segments: bool,
               largest_only: bool = False) -> list[str]:
    """The label lines of one image; crowd annotations are left out (YOLO has no crowd regions)."""
    h, w = image["height"], image["width"]
    scale = np.array([w, h], float)
    lines = []
    for ann in dataset.annotations_of(image["id"]):
        if ann.get("iscrowd", 0):
            continue
        k = class_index[ann["category_id"]]
        # the mask is the truth: its extent is the box (a COCO box may be missing, or disagree with it);
        # a box-only annotation is its own box
        mask = mask_ops.segmentation_to_mask(ann["segmentation"], h, w) if ann.get("segmentation") else None
        if not segments:
            x, y, bw, bh = ann["bbox"] if mask is None else mask_ops.mask_box(mask)
            values = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
        else:
            if mask is not None:
                polygons = mask_ops.mask_to_polygons(mask, largest_only=largest_only)
            else:
                x, y, bw, bh = ann["bbox"]
                polygons = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
            points = join_polygon_parts([np.asarray(p, float).reshape(-1, 2) for p in polygons])
            values = (np.clip(points / scale, 0.0, 1.0)).ravel().tolist()
        lines.append(f"{k} " + " ".join(f"{v:.6f}" for v in values))
    return lines


@dataclass(frozen=True)
class ExportResult:
    out: Path
    format: str
    images: dict[str, int]  # split (or "all") → images exported
    instances: int
    data_yaml: Path | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        splits = ", ".join(f"{name} {n}" for name, n in self.images.items())
        out = [f"exported {sum(self.images.values())} images ({splits}), {self.instances} instances "
               f"as {self.format} to {self.out}"]
        if self.data_yaml is not None:
            out.append(f"train with: yolo train data={self.data_yaml}")
        return out + self.notes


def _check_options(fmt: str, polygons: str, segmentation: str, link: str | None) -> None:
    if fmt not in FORMATS:
        raise VisionSynthError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if polygons not in POLYGON_MODES:
        raise VisionSynthError(f"--polygons {polygons!r}: choose one of {', '.join(POLYGON_MODES)}")
    if segmentation not in COCO_SEGMENTATIONS:
        raise VisionSynthError(f"--segmentation {segmentation!r}: choose one of {', '.join(COCO_SEGMENTATIONS)}")
    if link not in LINK_MODES:
        raise VisionSynthError(f"link {link!r}: choose hard, sym or None (copy)")


def _load_parts(root: Path) -> dict[str, CocoDataset]:
    """The datasets to export: each split file, or the whole annotations.json as 'all'."""
    annotations, images = dataset_paths(root)
    splits = existing_splits(root)
    if not splits:
        return {"all": load_coco(annotations, images)}
    parts = {name: load_coco(path, images) for name, path in splits.items()}
    runs = {name: part.info.get("split_run") for name, part in parts.items()}
    if len(set(runs.values())) > 1:  # e.g. a split killed between renaming its files
        raise DatasetError(f"{root}: the split files come from different runs of `vision-synth split` "
                           f"({', '.join(f'{n} {r}' for n, r in runs.items())}); run it again with --overwrite")
    return parts


def export_dataset(root: str | Path, out: str | Path, fmt: str, polygons: str = "all",
                   segmentation: str = "polygon", link: str | None = None, overwrite: bool = False,
                   show_progress: bool = True) -> ExportResult:
    """Export the dataset folder `root` to the new folder `out` in `fmt` (see FORMATS).

    polygons: "largest" keeps the largest part of a split mask, "all" keeps every part (YOLO-seg
    joins them into one outline). segmentation (COCO only): "polygon" or "rle-uncompressed".
    overwrite: replace an existing `out`, once the export is whole."""
    _check_options(fmt, polygons, segmentation, link)
    root, out = Path(root), Path(out)
    parts = _load_parts(root)
    with staged_output(out, replace=overwrite) as stage:
        if fmt == "coco":
            result = _export_coco(root, parts, stage, segmentation, polygons == "largest", link, show_progress)
        else:
            result = _export_yolo(parts, stage, out, fmt == "yolo-seg", polygons == "largest", link, show_progress)
    return ExportResult(out=out, format=fmt, **result)


def _export_yolo(parts: dict[str, CocoDataset], stage: Path, out: Path, segments: bool, largest_only: bool,
                 link: str | None, show_progress: bool = True) -> dict[str, Any]:
    first = next(iter(parts.values()))
    if "all" not in parts and not {"train", "val"} <= set(parts):
        raise DatasetError(f"{first.path.parent}: YOLO needs train and val split files, found {', '.join(parts)}; "
                           "re-run `vision-synth split`")
    categories = sorted(first.categories, key=lambda c: c["id"])
    class_index = {c["id"]: k for k, c in enumerate(categories)}
    counts, instances, seen = {}, 0, set()
    for name, dataset in parts.items():
        sub = "" if name == "all" else name
        for image in tqdm(dataset.images, desc=f"export {name}", unit="image", disable=not show_progress):
            rel = Path(image["file_name"])
            if (sub, rel) in seen:
                raise DatasetError(f"{dataset.path}: file_name {image['file_name']!r} is used by two images")
            seen.add((sub, rel))
            place_file(dataset.image_file(image), stage / "images" / sub / rel, link)
            lines = yolo_lines(dataset, image, class_index, segments, largest_only)
            label = stage / "labels" / sub / rel.with_suffix(".txt")  # (the stage is renamed whole at the end)
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(f"{line}\n" for line in lines))
            instances += len(lines)
        counts[name] = len(dataset.images)
    notes = []
    if "all" in parts:
        dirs = {"train": "images", "val": "images"}
        notes.append("note: the dataset has no split files, so val = train; run `vision-synth split` first "
                     "for a held-out val")
    else:
        dirs = {name: f"images/{name}" for name in parts}
    data = {"path": str(out.resolve()), **dirs, "names": {k: c["name"] for k, c in enumerate(categories)}}
    data_yaml = stage / "data.yaml"
    write_atomic(data_yaml, "# written by vision-synth export; class k is the k-th category by COCO id\n"
                 + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return {"images": counts, "instances": instances, "data_yaml": out / "data.yaml", "notes": notes}


def _export_coco(root: Path, parts: dict[str, CocoDataset], stage: Path, segmentation: str, largest_only: bool,
                 link: str | None, show_progress: bool = True) -> dict[str, Any]:
    files = {"all": load_coco(*dataset_paths(root))} if "all" not in parts else {}
    files.update(parts)
    counts, instances, fallbacks = {}, 0, 0
    for name, dataset in files.items():
        by_id = {im["id"]: im for im in dataset.images}
        annotations = []
        for ann in tqdm(dataset.annotations, desc=f"export {name}", unit="label", disable=not show_progress):
            ann = dict(ann)
            if ann.get("segmentation"):
                im = by_id[ann["image_id"]]
                mask = mask_ops.segmentation_to_mask(ann["segmentation"], im["height"], im["width"])
                mode = "rle-uncompressed" if ann.get("iscrowd", 0) else segmentation  # a crowd region stays RLE
                seg, area, box = exported_segmentation(mask, mode, largest_only)
                if name == "all" and mode == "polygon" and isinstance(seg, dict):
                    fallbacks += 1
                ann.update(segmentation=seg, area=area, bbox=box)
            annotations.append(ann)
        data = {"info": dataset.info, "licenses": [], "categories": dataset.categories,
                "images": dataset.images, "annotations": annotations}
        target = "annotations.json" if name == "all" else f"annotations_{name}.json"
        write_json(stage / target, data)
        if name == "all":
            for im in dataset.images:
                place_file(dataset.image_file(im), stage / "images" / im["file_name"], link)
            instances = len(annotations)
        else:
            counts[name] = len(dataset.images)
    notes = [f"note: {fallbacks} masks too thin for a polygon were written as uncompressed RLE"] if fallbacks else []
    return {"images": counts or {"all": len(files["all"].images)}, "instances": instances, "notes": notes}
