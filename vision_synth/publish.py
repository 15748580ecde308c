"""The publisher: the only writer of a dataset directory's published names, called after the gate.

Published state:  annotations.json (+ split files annotations_*.json), dataset_card.md,
                  quality.json and report.html when a gate ran.
Rejected state:   annotations.rejected.json (split files annotations_*.rejected.json),
                  dataset_card.rejected.md, REJECTED.md (which gates failed and how to check
                  again), quality.json and report.html with `"passed": false`.
Nothing in a rejected directory reads as a published COCO dataset.

The annotations to publish come from a staging file under OUT/.vision_synth/ (the merge of a run's
shards, or a check's copy without its removed duplicates) or are the directory's current file.
Every step is one atomic rename or write, ordered so that a process killed at any point leaves a
directory that is either not published or completely published:
  passing:   side files first (quality.json, report.html, the card), the rejected note and card
             removed, split files renamed back; annotations.json appears last.
  rejecting: annotations.json leaves first, in one rename to annotations.rejected.json; then the
             staged content (if any), the split files, REJECTED.md and the side files.
A rerun of the same check after such a kill reaches the same verdict and the same files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from vision_synth.coco.writer import write_atomic
from vision_synth.errors import DatasetError
from vision_synth.files import remove_stale_stages_in

ANNOTATIONS = "annotations.json"
REJECTED_SUFFIX = ".rejected"
REJECTED_ANNOTATIONS = f"annotations{REJECTED_SUFFIX}.json"
REJECTED_NOTE = "REJECTED.md"
CARD = "dataset_card.md"
REJECTED_CARD = f"dataset_card{REJECTED_SUFFIX}.md"
QUALITY_JSON = "quality.json"
REPORT_HTML = "report.html"
STATE_DIR = ".vision_synth"
STAGING = f"{STATE_DIR}/staging/{ANNOTATIONS}"
# every name the publisher may leave in a dataset directory (for `generate --overwrite` to clear)
PUBLISHED_NAMES = (ANNOTATIONS, "annotations_*.json", REJECTED_ANNOTATIONS, CARD, REJECTED_CARD, REJECTED_NOTE,
                   QUALITY_JSON, REPORT_HTML)


def rejected_name(path: Path) -> Path:
    """annotations.json → annotations.rejected.json"""
    return path.with_name(f"{path.stem}{REJECTED_SUFFIX}{path.suffix}")


def staging_file(dataset_dir: Path) -> Path:
    """Where a run merges its shards (and a check stages its de-duplicated annotations)."""
    return Path(dataset_dir) / STAGING


def is_rejected(dataset_dir: Path) -> bool:
    dataset_dir = Path(dataset_dir)
    return (dataset_dir / REJECTED_NOTE).exists() or (dataset_dir / REJECTED_ANNOTATIONS).exists()


def current_annotations(dataset_dir: Path) -> Path:
    """The dataset's annotations file: annotations.json, or annotations.rejected.json of a dataset an
    earlier check rejected."""
    dataset_dir = Path(dataset_dir)
    for name in (ANNOTATIONS, REJECTED_ANNOTATIONS):
        if (dataset_dir / name).is_file():
            return dataset_dir / name
    raise DatasetError(f"{dataset_dir}: no {ANNOTATIONS} (nor {REJECTED_ANNOTATIONS}); is this a dataset directory?")


@dataclass(frozen=True)
class Publication:
    """What the publisher writes for one verdict. `passed` None: no gate ran (only the annotations and
    the card). `drop_images`: image ids to leave out of the annotations (duplicates the check removed)."""

    passed: bool | None
    card: str
    quality_json: str | None = None
    report_html: str | None = None
    rejected_note: str | None = None
    drop_images: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.passed is False and not self.rejected_note:
            raise ValueError("a rejection needs its REJECTED.md text")


def without_images(text: str, image_ids: Iterable[int]) -> str:
    """COCO json text without the given images and their annotations; ids are kept, so every record
    still traces back to its sample, and `info.removed_duplicates` lists what went."""
    drop = {int(i) for i in image_ids}
    data = json.loads(text)
    data["images"] = [im for im in data["images"] if im["id"] not in drop]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in drop]
    info = dict(data.get("info") or {})
    info["removed_duplicates"] = sorted(set(info.get("removed_duplicates", [])) | drop)
    data["info"] = info
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _split_files(dataset_dir: Path, rejected: bool) -> list[Path]:
    """annotations_*.json (or their .rejected twins), never the main file."""
    if rejected:
        return sorted(p for p in dataset_dir.glob(f"annotations_*{REJECTED_SUFFIX}.json"))
    return sorted(p for p in dataset_dir.glob("annotations_*.json") if not p.name.endswith(f"{REJECTED_SUFFIX}.json"))


def _published_twin(path: Path) -> Path:
    return path.with_name(path.name.replace(f"{REJECTED_SUFFIX}.json", ".json"))


def publish(dataset_dir: str | Path, annotations: str | Path, publication: Publication) -> Path:
    """Put `dataset_dir` into the state `publication` says, with `annotations` (a staging file, or the
    directory's current annotations file) as its annotations. Returns the annotations file written."""
    out = Path(dataset_dir)
    source = Path(annotations)
    if publication.drop_images:
        staged = staging_file(out)
        write_atomic(staged, without_images(source.read_text(), publication.drop_images))
        source = staged
    if publication.passed is False:
        return _reject(out, source, publication)
    return _publish(out, source, publication)


def _publish(out: Path, source: Path, p: Publication) -> Path:
    target = out / ANNOTATIONS
    for name, text in ((QUALITY_JSON, p.quality_json), (REPORT_HTML, p.report_html), (CARD, p.card)):
        if text is not None:
            write_atomic(out / name, text)
    (out / REJECTED_CARD).unlink(missing_ok=True)
    (out / REJECTED_NOTE).unlink(missing_ok=True)
    for path in _split_files(out, rejected=True):
        os.replace(path, _published_twin(path))
    if source.resolve() != target.resolve():
        os.replace(source, target)  # the dataset is published from this moment, complete
    (out / REJECTED_ANNOTATIONS).unlink(missing_ok=True)  # an older rejected copy of what is now published
    return target


def _reject(out: Path, source: Path, p: Publication) -> Path:
    target = out / REJECTED_ANNOTATIONS
    published = out / ANNOTATIONS
    if published.is_file():
        os.replace(published, target)  # not published from this moment: one rename
    if source.resolve() not in (target.resolve(), published.resolve()):
        os.replace(source, target)
    for path in _split_files(out, rejected=False):
        os.replace(path, rejected_name(path))
    write_atomic(out / REJECTED_NOTE, p.rejected_note)
    for name, text in ((QUALITY_JSON, p.quality_json), (REPORT_HTML, p.report_html), (REJECTED_CARD, p.card)):
        if text is not None:
            write_atomic(out / name, text)
    (out / CARD).unlink(missing_ok=True)
    return target


def check_and_publish(dataset_dir: str | Path, spec=None, *, annotations: str | Path | None = None, facts=None,
                      reference: str | Path | None = None, reference_images: str | Path | None = None,
                      utility: bool | None = None, dataset_config=None, progress: bool = True,
                      command: str | None = None):
    """Check the dataset in `dataset_dir` (its `annotations`: a staging file, default the directory's
    current annotations file), then publish or reject it: quality.json, report.html, the card and
    the annotations, in the order above. `facts`: the card's facts (vision_synth.quality.card), by
    default what the check knows. Returns the QualityReport (`raise_if_failed()` for exit code 3)."""
    from dataclasses import replace

    from vision_synth.quality.card import (provenance_rows, rejection_note, render_card, render_report,
                                           report_facts, sample_grid)
    from vision_synth.quality.check import measure_quality

    for folder in (Path(dataset_dir), staging_file(dataset_dir).parent):
        remove_stale_stages_in(folder)  # files a killed check (or generate) was writing
    report = measure_quality(dataset_dir, spec, annotations=annotations, reference=reference,
                             reference_images=reference_images, utility=utility, dataset_config=dataset_config,
                             progress=progress, command=command)
    facts = report_facts(report) if facts is None else replace(facts,
                                                               provenance=facts.provenance + provenance_rows(report))
    grid = sample_grid(report.annotations, report.images_dir, report.spec.sample_grid)
    publication = Publication(
        passed=report.passed, card=render_card(facts, report),
        quality_json=json.dumps(report.to_json(), indent=2) + "\n", report_html=render_report(report, grid),
        rejected_note=None if report.passed else rejection_note(report),
        drop_images=tuple(report.duplicates.removed))
    publish(report.dataset_dir, report.annotations, publication)
    return report
