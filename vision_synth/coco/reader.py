"""Read and validate an existing COCO instances file; errors name the file and the record."""

from __future__ import annotations

import functools
import json
import math
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vision_synth import masks as mask_ops
from vision_synth.errors import DatasetError
from vision_synth.types import Instances

BOX_TOLERANCE = 1.0  # pixels a box may pass the image edge (rounding in other tools' exports)


@dataclass(frozen=True, eq=False)
class CocoDataset:
    path: Path
    images_dir: Path | None
    info: dict[str, Any]
    categories: list[dict[str, Any]]
    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    _by_image: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def annotations_of(self, image_id: int) -> list[dict[str, Any]]:
        return self._by_image.get(image_id, [])

    def image_file(self, image: dict[str, Any]) -> Path:
        base = self.images_dir if self.images_dir is not None else self.path.parent
        return base / image["file_name"]

    def read_image(self, image: dict[str, Any], mode: str = "RGB") -> np.ndarray:
        """The pixels of an image record (imageio.read_image), refused in one line naming the file and
        the record when their size is not the record's width × height (the masks are drawn at that)."""
        from vision_synth.imageio import read_image

        pixels = read_image(self.image_file(image), mode)
        if pixels.shape[:2] != (image["height"], image["width"]):
            position = next(k for k, record in enumerate(self.images) if record is image)
            raise DatasetError(f"{self.path}: images[{position}] (id {image['id']}): image file "
                               f"{self.image_file(image)} is {pixels.shape[1]}×{pixels.shape[0]}, the record says "
                               f"{image['width']}×{image['height']}")
        return pixels

    def box_of(self, ann: dict[str, Any]) -> list[float]:
        """An annotation's [x, y, w, h]: its bbox, or the extent of its mask when it has none (COCO
        does not require a bbox beside a segmentation)."""
        if ann.get("bbox") is not None:
            return list(ann["bbox"])
        image = self._images_by_id[ann["image_id"]]
        return list(mask_ops.mask_box(mask_ops.segmentation_to_mask(ann["segmentation"], image["height"],
                                                                     image["width"])))

    @functools.cached_property
    def _images_by_id(self) -> dict[int, dict[str, Any]]:
        return {im["id"]: im for im in self.images}

    @property
    def category_names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.categories}

    def instances(self, image: dict[str, Any]) -> Instances:
        """Masks of an image's annotations. Box-only annotations become box masks, flagged in the
        `approximate` attribute. Attributes: `annotation_id`, `approximate`, `source`."""
        h, w = image["height"], image["width"]
        anns = self.annotations_of(image["id"])
        masks = np.zeros((len(anns), h, w), bool)
        approximate = np.zeros(len(anns), bool)
        for row, ann in enumerate(anns):
            seg = ann.get("segmentation")
            if seg:
                masks[row] = mask_ops.segmentation_to_mask(seg, h, w)
            else:
                x, y, bw, bh = ann["bbox"]
                x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
                x1, y1 = min(int(np.ceil(x + bw)), w), min(int(np.ceil(y + bh)), h)
                masks[row, y0:y1, x0:x1] = True
                approximate[row] = True
        return Instances(
            masks,
            np.array([a["category_id"] for a in anns], np.int64),
            attributes={
                "annotation_id": np.array([a["id"] for a in anns], np.int64),
                "approximate": approximate,
                "source": np.array([_source_of(a) for a in anns], dtype=object),
            },
        )


def is_synthetic(*records: dict[str, Any]) -> bool:
    """The one answer to "is this record synthetic?": the first of `records` (an annotation, then its
    image) that carries a `synthetic` flag decides, and a record without the flag is real."""
    for record in records:
        if "synthetic" in record and record["synthetic"] is not None:
            return record["synthetic"] is True
    return False


def _source_of(ann: dict[str, Any]) -> str:
    return str(ann.get("source", "procedural" if is_synthetic(ann) else "real"))


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not NaN or infinity, which every comparison lets through)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


ID_MAX = 2**63 - 1  # ids are read into int64 arrays (numpy, torch, pycocotools)


def _is_id(value: Any) -> bool:
    """A COCO id: a whole number 0..2^63-1 (not a bool, not a float, not a list)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= ID_MAX


def _fail(path: Path, where: str, message: str) -> DatasetError:
    return DatasetError(f"{path}: {where}: {message}")


def _read_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise DatasetError(f"{path}: invalid JSON (nested too deeply to be a COCO file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def _check_segmentation(path: Path, where: str, seg: Any, h: int, w: int) -> None:
    """What pycocotools needs before it may decode `seg`: it checks nothing itself (a far polygon point
    crashes it, RLE runs that miss the image size leave garbage or write past its buffer)."""
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise _fail(path, where, f"segmentation[{k}] is not a polygon of at least 3 points")
        try:
            mask_ops.check_polygons(seg, h, w)
        except ValueError as exc:
            raise _fail(path, where, f"segmentation: {exc}") from None
    elif isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise _fail(path, where, "RLE segmentation needs 'size' and 'counts'")
        if not isinstance(seg["size"], list) or list(seg["size"]) != [h, w]:
            raise _fail(path, where, f"RLE size {seg['size']} differs from image size [{h}, {w}]")
        counts = seg["counts"]
        if not isinstance(counts, (list, str)):
            raise _fail(path, where, "RLE counts must be a string (compressed) or a list of run lengths")
        try:
            mask_ops.check_rle(seg, h, w)
        except ValueError as exc:
            raise _fail(path, where, f"{'uncompressed ' if isinstance(counts, list) else ''}{exc}") from None
    else:
        raise _fail(path, where, "segmentation must be a polygon list or an RLE dict")


def outside_file_name(file_name: str) -> bool:
    """True when an image's `file_name` is absolute or climbs out of the image folder
    ('/etc/hostname', '../../x.jpg', 'a/../../x.jpg'), by its text: symlinks inside the folder are
    followed as usual (export --symlink writes them)."""
    name = file_name.replace("\\", "/")
    if name.startswith("/") or Path(file_name).is_absolute() or (len(name) > 1 and name[0].isalpha() and name[1] == ":"):
        return True
    normal = posixpath.normpath(name)
    return normal == ".." or normal.startswith("../")


def load_coco(path: str | Path, images_dir: str | Path | None = None, check_files: bool = True,
              allow_outside_paths: bool = False) -> CocoDataset:
    """Load a COCO instances json and check every record; `images_dir` defaults to the json's folder.

    An image `file_name` that is absolute or leaves `images_dir` is refused, unless
    `allow_outside_paths` (the commands that write file names into an output never pass it)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: '{key}' is missing or not a list")
    if data.get("info") is not None and not isinstance(data["info"], dict):
        raise DatasetError(f"{path}: 'info' is not an object")

    categories = data["categories"]
    cat_ids = set()
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or not _is_id(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise _fail(path, where, "needs an integer 'id' (0 to 2^63-1) and a string 'name'")
        if cat["id"] in cat_ids:
            raise _fail(path, where, f"duplicate category id {cat['id']}")
        cat_ids.add(cat["id"])

    base = Path(images_dir) if images_dir is not None else path.parent
    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise _fail(path, where, "not an object")
        for key, kind in (("id", int), ("width", int), ("height", int), ("file_name", str)):
            if not isinstance(img.get(key), kind) or isinstance(img.get(key), bool):
                raise _fail(path, where, f"'{key}' is missing or not {'an integer' if kind is int else 'a string'}")
        where = f"images[{i}] (id {img['id']})"
        if not _is_id(img["id"]):
            raise _fail(path, where, "'id' must be a whole number from 0 to 2^63-1")
        if img["width"] < 1 or img["height"] < 1:
            raise _fail(path, where, "width and height must be positive")
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and img["width"] * img["height"] > limit:  # as imageio refuses such a file
            raise _fail(path, where, f"{img['width']}×{img['height']} is more pixels than an image may have "
                                     f"({limit:,}, Pillow's MAX_IMAGE_PIXELS)")
        if img["id"] in images:
            raise _fail(path, where, "duplicate image id")
        if not allow_outside_paths and outside_file_name(img["file_name"]):
            raise _fail(path, where, f"file_name {img['file_name']!r} is absolute or leaves the image folder "
                                     f"{base}; file names must be relative paths inside it")
        if check_files and not (base / img["file_name"]).is_file():
            raise _fail(path, where, f"image file {base / img['file_name']} not found")
        images[img["id"]] = img

    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ann_ids = set()
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or not _is_id(ann.get("id")):
            raise _fail(path, where, "needs an integer 'id' (0 to 2^63-1)")
        where = f"annotations[{i}] (id {ann['id']})"
        if ann["id"] in ann_ids:
            raise _fail(path, where, "duplicate annotation id")
        ann_ids.add(ann["id"])
        img = images.get(ann.get("image_id")) if _is_id(ann.get("image_id")) else None
        if img is None:
            raise _fail(path, where, f"image_id {ann.get('image_id')!r} is not in images")
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in cat_ids:
            raise _fail(path, where, f"category_id {ann.get('category_id')!r} is not in categories")
        h, w = img["height"], img["width"]
        if "area" in ann and not (_is_number(ann["area"]) and ann["area"] >= 0):
            raise _fail(path, where, f"area {ann['area']!r} is not a number >= 0")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise _fail(path, where, f"iscrowd {ann['iscrowd']!r} is neither 0 nor 1")
        bbox = ann.get("bbox")
        seg = ann.get("segmentation")
        if bbox is not None:
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                raise _fail(path, where, "bbox must be [x, y, width, height] of finite numbers")
            x, y, bw, bh = bbox
            if bw <= 0 or bh <= 0:
                raise _fail(path, where, f"bbox {bbox} has no area")
            t = BOX_TOLERANCE
            if x < -t or y < -t or x + bw > w + t or y + bh > h + t:
                raise _fail(path, where, f"bbox {bbox} lies outside the {w}×{h} image")
        if seg:
            _check_segmentation(path, where, seg, h, w)
            try:
                mask = mask_ops.segmentation_to_mask(seg, h, w)
            except (TypeError, ValueError) as exc:
                raise _fail(path, where, f"segmentation cannot be decoded ({exc})") from None
            if ann.get("iscrowd", 0) == 0 and not mask.any():
                raise _fail(path, where, "empty mask")
        elif bbox is None:
            raise _fail(path, where, "has neither segmentation nor bbox")
        by_image[ann["image_id"]].append(ann)

    return CocoDataset(
        path=path,
        images_dir=base,
        info=data.get("info") or {},
        categories=categories,
        images=list(images.values()),
        annotations=data["annotations"],
        _by_image=dict(by_image),
    )
