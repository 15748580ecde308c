"""Augment an existing COCO dataset on disk: read each image as a Sample, write its copies like the
generator writes (images, a shard of records, then annotations.json), and publish OUT only whole.

Input image j (its position in the json) is sample index j; its outputs take the indices of
`stage.output_index`, so image ids and file names follow from (j, copy) alone.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vision_synth import __version__
from vision_synth.augment.spec import AugmentSpec
from vision_synth.augment.stage import augmented_copies, source_of
from vision_synth.coco.reader import CocoDataset, is_synthetic, load_coco
from vision_synth.coco.writer import ShardWriter, image_file_name, sample_records, write_annotations
from vision_synth.files import check_new_output, staged_output
from vision_synth.imageio import write_image
from vision_synth.types import Provenance, Sample


@dataclass
class AugmentSummary:
    out_dir: Path
    images_in: int
    images_out: int
    instances: dict[str, int] = field(default_factory=dict)
    crowd_skipped: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        total = sum(self.instances.values())
        per_class = ", ".join(f"{name} {n}" for name, n in self.instances.items())
        rate = self.images_in / self.seconds if self.seconds > 0 else 0.0
        lines = [f"wrote {self.images_out} images from {self.images_in}, {total} instances ({per_class}) "
                 f"to {self.out_dir}",
                 f"augmented {self.images_in} images in {self.seconds:.1f} s ({rate:.1f} input images/s)"]
        if self.crowd_skipped:
            lines.append(f"left out {self.crowd_skipped} iscrowd annotations (crowd regions are not instances)")
        lines.append(f"annotations: {self.out_dir / 'annotations.json'}")
        return lines


def coco_sample(dataset: CocoDataset, position: int, seed: int) -> Sample:
    """Image `position` of a COCO dataset as a Sample (index = position). iscrowd regions are left
    out; box-only annotations become box masks with attribute `approximate`."""
    record = dataset.images[position]
    pixels = dataset.read_image(record)
    instances = dataset.instances(record)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in dataset.annotations_of(record["id"])], bool)
    if crowd.any():
        instances = instances[~crowd]
    provenance = Provenance(generator=str(record.get("generator") or "coco"), synthetic=is_synthetic(record),
                            model=record.get("model"))
    return Sample(position, seed, np.ascontiguousarray(pixels), instances, provenance)


def _records(sample: Sample, source: dict[str, Any], copy: int | None, fmt: str, segmentation: str) -> dict[str, Any]:
    """The writer's record plus where the image came from."""
    name = image_file_name(sample.index, fmt)
    record = sample_records(sample, name, segmentation)
    record["image"]["source_image_id"] = source["id"]
    record["image"]["source_file_name"] = source["file_name"]
    if copy is not None:
        record["image"]["copy"] = copy
    return record


def augment_coco(annotations: str | Path, images: str | Path | None, spec: AugmentSpec, out: str | Path,
                 seed: int = 0, fmt: str = "jpeg", quality: int = 92, segmentation: str = "rle",
                 overwrite: bool = False, show_progress: bool = True,
                 pipeline_dir: Path | None = None) -> AugmentSummary:
    """Write the augmented copies of a COCO dataset to `out` (images/, annotations.json). Everything
    is built in a hidden folder beside `out` and renamed into place at the end: on any error, `out`
    is left as it was."""
    started = time.perf_counter()
    out = Path(out)
    check_new_output(out, overwrite)  # before any image is read
    dataset = load_coco(annotations, images)
    pipeline = spec.load_pipeline(pipeline_dir)
    categories = dataset.categories
    names = dataset.category_names

    read = functools.lru_cache(maxsize=16)(lambda j: coco_sample(dataset, j, seed))
    total = len(dataset.images)

    def pick_sources(index: int):
        """Other images of the dataset, drawn with the copy's own generator (the image itself when
        it is the only one)."""
        def pick(rng: np.random.Generator) -> list[Sample]:
            if total == 1:
                return [read(index)]
            picks = rng.choice(total - 1, size=min(spec.copy_paste.sources, total - 1), replace=False)
            return [read(int(j) + int(j >= index)) for j in picks]
        return pick

    crowd = sum(1 for a in dataset.annotations if a.get("iscrowd", 0))
    # built in .OUT.partial-PID-TOKEN; an existing OUT (--overwrite) is replaced only once the new one is whole
    with staged_output(out, replace=overwrite) as work:
        shard = work / "records.jsonl"
        written = 0
        with ShardWriter(shard) as writer:
            for j in tqdm(range(total), desc="augment", unit="image", disable=not show_progress):
                sample = read(j)
                sources = pick_sources(j) if spec.copy_paste is not None else None
                for variant in augmented_copies(sample, pipeline, spec, sources):
                    _, copy = source_of(variant.index, spec)
                    name = image_file_name(variant.index, fmt)
                    write_image(work / "images" / name, variant.image, fmt, quality)
                    writer.add(_records(variant, dataset.images[j], copy, fmt, segmentation))
                    written += 1
        info = {**dataset.info,
                "description": f"augmented from {dataset.path}",
                "vision_synth": {"version": __version__, "seed": seed, "source": str(dataset.path),
                                 "augment": spec.model_dump(mode="json", exclude={"pipeline"}),
                                 "pipeline": None if pipeline is None else pipeline.to_dict()}}
        counts = write_annotations(work / "annotations.json", [shard], info, categories)
        shard.unlink()
    instances = {names[c]: n for c, n in counts.items()}
    return AugmentSummary(out, total, written, instances, crowd, time.perf_counter() - started)
