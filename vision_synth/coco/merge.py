"""Merge COCO dataset folders into one: categories matched by name, ids renumbered, provenance kept.

- Categories with the same name are one category; ids 1..K in order of first appearance (inputs in
  the order given, each input's categories in file order).
- Images get ids 1..N in input order (then by original id) and the file name of their new id
  (images/000000001.png ...), so names never collide; annotation ids run 1..M in that order.
- Each image records `source_dataset` (the input folder as given), `source_image_id` and
  `source_file_name`; each annotation `source_annotation_id`. An input that is itself a merge keeps
  its images' provenance, which then points to where the image first came from.
- Inputs are read one at a time and written as one shard record per image, then streamed into
  annotations.json by the shard writer; the result is built beside OUT and renamed when complete.
Split files of the inputs are not merged; split the merged dataset instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from vision_synth.coco.export import place_file
from vision_synth.coco.reader import load_coco
from vision_synth.coco.split import dataset_paths
from vision_synth.coco.writer import ShardWriter, write_annotations
from vision_synth.files import staged_output
from vision_synth.errors import DatasetError, VisionSynthError

PROVENANCE_KEYS = ("source_dataset", "source_image_id", "source_file_name")


@dataclass(frozen=True)
class MergeResult:
    out: Path
    images: int
    instances: dict[str, int]  # class name → instance count
    categories: list[dict[str, Any]]
    inputs: list[tuple[str, int, int]]  # (input folder, images, annotations)

    def lines(self) -> list[str]:
        per_class = ", ".join(f"{name} {n}" for name, n in self.instances.items())
        out = [f"{source}: {n_img} images, {n_ann} annotations" for source, n_img, n_ann in self.inputs]
        out.append(f"merged {self.images} images, {sum(self.instances.values())} instances ({per_class}) "
                   f"into {self.out}")
        return out


class CategoryMerger:
    """Maps each input's category ids to merged ids, matching categories by name."""

    def __init__(self) -> None:
        self.categories: list[dict[str, Any]] = []
        self._id_of_name: dict[str, int] = {}

    def add(self, categories: list[dict[str, Any]], where: Path) -> dict[int, int]:
        """Register an input's categories; returns its {input id: merged id}."""
        names = [c["name"] for c in categories]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DatasetError(f"{where}: category name {repeated[0]!r} is used by two ids; cannot match by name")
        mapping = {}
        for cat in categories:
            if cat["name"] not in self._id_of_name:
                new_id = len(self.categories) + 1
                self._id_of_name[cat["name"]] = new_id
                self.categories.append({**cat, "id": new_id})
            mapping[cat["id"]] = self._id_of_name[cat["name"]]
        return mapping


def merge_datasets(roots: Sequence[str | Path], out: str | Path, link: str | None = None, overwrite: bool = False,
                   show_progress: bool = True) -> MergeResult:
    """Merge the dataset folders `roots` into the new folder `out`; images copied, or hard-linked
    (`link="hard"`) or symlinked (`"sym"`). overwrite: replace an existing `out`, once the merge is whole."""
    if len(roots) < 2:
        raise VisionSynthError("merge needs at least two dataset folders")
    out = Path(out)
    categories = CategoryMerger()
    inputs = []
    with staged_output(out, replace=overwrite) as stage:
        shard = stage / "merge.jsonl"
        new_id = 0
        with ShardWriter(shard) as writer:
            for root in roots:
                dataset = load_coco(*dataset_paths(root))
                category_map = categories.add(dataset.categories, dataset.path)
                for image in tqdm(sorted(dataset.images, key=lambda im: im["id"]), desc=f"merge {root}",
                                  unit="image", disable=not show_progress):
                    new_id += 1
                    file_name = f"{new_id:09d}{Path(image['file_name']).suffix.lower()}"
                    place_file(dataset.image_file(image), stage / "images" / file_name, link)
                    writer.add(_record(image, dataset.annotations_of(image["id"]), new_id, file_name,
                                       str(root), category_map))
                inputs.append((str(root), len(dataset.images), len(dataset.annotations)))
        info = {"description": f"merge of {len(roots)} datasets",
                "merged_from": [{"dataset": source, "images": n, "annotations": m} for source, n, m in inputs]}
        counts = write_annotations(stage / "annotations.json", [shard], info, categories.categories)
        shard.unlink()
    names = {c["id"]: c["name"] for c in categories.categories}
    return MergeResult(out, new_id, {names[c]: n for c, n in counts.items()}, categories.categories, inputs)


def _record(image: dict[str, Any], annotations: list[dict[str, Any]], new_id: int, file_name: str, source: str,
            category_map: dict[int, int]) -> dict[str, Any]:
    """The shard record of one image: renumbered, with its provenance; annotation ids come at write."""
    inherited = all(key in image for key in PROVENANCE_KEYS)  # the input is itself a merge
    if inherited:
        provenance = {key: image[key] for key in PROVENANCE_KEYS}
    else:
        provenance = {"source_dataset": source, "source_image_id": image["id"], "source_file_name": image["file_name"]}
    record_image = {**image, "id": new_id, "file_name": file_name, **provenance}
    record_annotations = []
    for ann in annotations:
        source_id = ann["source_annotation_id"] if inherited and "source_annotation_id" in ann else ann["id"]
        rest = {k: v for k, v in ann.items() if k != "id"}
        record_annotations.append({**rest, "image_id": new_id, "category_id": category_map[ann["category_id"]],
                                   "source_annotation_id": source_id})
    return {"index": new_id - 1, "image": record_image, "annotations": record_annotations}
