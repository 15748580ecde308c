"""`run_quality`: every quality check on a dataset directory, the gate, and what it writes.

Order (data moves one way): check inputs → perceptual hashes and features → duplicates (removed
first when configured, so every later figure describes what is published) → label sanity and
distributions → fidelity → memorisation → utility → gate → DIR/quality.json, DIR/report.html,
the dataset card, and the published or rejected state (see gate.py).
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision_synth import __version__
from vision_synth.coco.reader import CocoDataset, load_coco
from vision_synth.coco.writer import write_atomic
from vision_synth.errors import DatasetError, VisionSynthError
from vision_synth.quality import gate as gates
from vision_synth.quality.duplicates import DuplicateReport, find_duplicates, phash, remove_images
from vision_synth.quality.features import FeatureExtractor, inception_weights_path, load_extractor
from vision_synth.quality.fidelity import FidelityResult, measure_fidelity, metric_name
from vision_synth.quality.labels import LabelReport, check_labels
from vision_synth.quality.memorisation import DCRResult, dcr
from vision_synth.quality.spec import QualitySpec
from vision_synth.quality.utility import UtilityResult, measure_utility
from vision_synth.imageio import read_image

QUALITY_JSON = "quality.json"
REPORT_HTML = "report.html"
PACKAGES = ("vision_synth", "torch", "torchvision", "numpy", "scipy", "pycocotools", "opencv-python-headless",
            "pillow", "torch-fidelity", "torchmetrics", "diffusers", "albumentations", "matplotlib")
LEARNED_GENERATORS = ("diffusion",)
CROP_PAD = 0.1  # context around an instance crop, as a fraction of its box side


@dataclass
class QualityReport:
    """Everything one check measured and decided. `passed` is the gate's verdict; the directory is
    published when True and in the rejected state when False."""

    dataset_dir: Path
    spec: QualitySpec
    passed: bool
    gates: list[gates.GateResult]
    labels: LabelReport
    duplicates: DuplicateReport
    fidelity: FidelityResult | None
    memorisation: DCRResult | None
    utility: UtilityResult | None
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    created: str = ""

    @property
    def failed(self) -> list[gates.GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def state(self) -> str:
        return "published" if self.passed else "rejected"

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset_dir),
            "created": self.created,
            "passed": self.passed,
            "state": self.state,
            "failed_gates": [g.name for g in self.failed],
            "gates": [g.to_json() for g in self.gates],
            "labels": self.labels.to_json(),
            "duplicates": self.duplicates.to_json(),
            "fidelity": None if self.fidelity is None else self.fidelity.to_json(),
            "memorisation": None if self.memorisation is None else self.memorisation.to_json(),
            "utility": None if self.utility is None else self.utility.to_json(),
            "notes": self.notes,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "provenance": self.provenance,
            "config": self.spec.model_dump(mode="json"),
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def lines(self) -> list[str]:
        out = [f"quality gate {'PASSED' if self.passed else 'FAILED'}: {self.dataset_dir} is {self.state}"]
        out += [f"  {g.message()}" for g in self.gates]
        if self.fidelity is not None:
            f = self.fidelity
            out.append(f"  {f.name('FID')} {f.fid:.4g}, {f.name('KID')} {f.kid_mean:.4g} ± {f.kid_std:.2g} "
                       f"({f.n_synthetic} synthetic vs {f.n_reference} reference images)")
        d = self.duplicates
        out.append(f"  duplicates: {len(d.flagged)} of {d.n_images} images flagged, {len(d.removed)} removed")
        out.append(f"  labels: {self.labels.issues} issues")
        if self.memorisation is not None:
            out.append(f"  memorisation: min normalised DCR {self.memorisation.min:.3g}, "
                       f"{self.memorisation.close_fraction:.1%} closer than the reference's "
                       f"{self.memorisation.close_quantile:.0%} quantile")
        if self.utility is not None:
            u = self.utility
            out.append(f"  utility: AP real {u.mean('real'):.4f}, real+synthetic {u.mean('real+synthetic'):.4f}, "
                       f"delta {u.delta_ap:+.4f} (seeds {sorted({r.seed for r in u.runs})})")
        out += [f"  note: {n}" for n in self.notes]
        out += [f"  {name}: {path}" for name, path in self.files.items()]
        return out

    def raise_if_failed(self) -> None:
        """GateFailed (exit code 3) naming the failed gates, when the gate did not pass."""
        if not self.passed:
            detail = "; ".join(g.message() for g in self.failed)
            raise gates.GateFailed(f"{self.dataset_dir}: quality gate failed, dataset rejected "
                                   f"(see {self.dataset_dir / gates.REJECTED_NOTE}): {detail}")


@dataclass(frozen=True)
class QualityInputs:
    reference: Path | None
    reference_images: Path | None
    run_utility: bool
    run_memorisation: bool | None  # None: decided from the dataset's provenance


def check_quality_inputs(spec: QualitySpec, reference: str | Path | None = None,
                         reference_images: str | Path | None = None, utility: bool | None = None) -> QualityInputs:
    """Every reason a check with `spec` cannot run (reference files, weights, thresholds on figures
    that will not be measured), raised at once: call it before generating, so a run does not fail
    after its work is done. Returns the resolved inputs."""
    reference = Path(reference) if reference is not None else spec.resolve(spec.reference)
    if reference_images is not None:
        reference_images = Path(reference_images)
    elif spec.reference_images is not None:
        reference_images = spec.resolve(spec.reference_images)
    elif reference is not None:
        reference_images = _images_dir(reference.parent)
    run_utility = spec.utility.enabled if utility is None else bool(utility)
    g = spec.gate
    needs_reference = {
        "fidelity": spec.fidelity.features != "off",
        "utility": run_utility,
        "gate.max_box_size_ks": g.max_box_size_ks is not None,
        "gate.min_dcr": g.min_dcr is not None,
    }
    missing = [k for k, v in needs_reference.items() if v]
    if reference is None and missing:
        raise VisionSynthError(f"{', '.join(missing)} need(s) a reference set of real images: pass --reference "
                               "REAL.json --reference-images DIR or set quality.reference")
    if reference is not None and not reference.is_file():
        raise DatasetError(f"{reference}: reference annotations not found")
    if reference_images is not None and not reference_images.is_dir():
        raise DatasetError(f"{reference_images}: reference image folder not found")
    if g.min_utility_delta_ap is not None and not run_utility:
        raise VisionSynthError("gate.min_utility_delta_ap needs the utility check: pass --utility or set "
                               "quality.utility.enabled: true")
    if spec.fidelity.features == "inception":
        inception_weights_path(spec.resolve(spec.fidelity.weights))  # the missing-weights message, now
    if run_utility and spec.utility.train.weights is not None:
        weights = spec.resolve(spec.utility.train.weights)
        if not weights.is_file():
            raise VisionSynthError(f"{weights} (quality.utility.train.weights): weights file not found")
    memorisation = spec.memorisation.enabled
    dcr_gate = g.min_dcr is not None or g.max_dcr_close_fraction is not None
    decided = True if (memorisation is True or dcr_gate) else (False if memorisation is False else None)
    return QualityInputs(reference, reference_images, run_utility, decided)


def _images_dir(folder: Path) -> Path:
    """A dataset folder's images: its images/ subfolder when there is one (vision_synth.coco.split)."""
    return folder / "images" if (folder / "images").is_dir() else folder


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(stream)])))


def _sample(items: list, limit: int, rng: np.random.Generator) -> list:
    """At most `limit` of `items`, a seeded choice kept in the original order."""
    if len(items) <= limit:
        return list(items)
    return [items[k] for k in sorted(rng.choice(len(items), limit, replace=False))]


def _is_synthetic_image(image: dict[str, Any]) -> bool:
    return image.get("synthetic") is not False


def _crop(image: np.ndarray, bbox: list[float], size: int) -> np.ndarray:
    h, w = image.shape[:2]
    x, y, bw, bh = bbox
    pad_x, pad_y = CROP_PAD * bw, CROP_PAD * bh
    x0, y0 = max(int(np.floor(x - pad_x)), 0), max(int(np.floor(y - pad_y)), 0)
    x1, y1 = min(int(np.ceil(x + bw + pad_x)), w), min(int(np.ceil(y + bh + pad_y)), h)
    patch = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    shrink = min(patch.shape[:2]) > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _class_crops(dataset: CocoDataset, image_ids: set[int], names: list[str], limit: int, size: int,
                 rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Up to `limit` resized instance crops per class name (a seeded choice), reading each image once."""
    by_name = dataset.category_names
    chosen: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        anns = [a for a in dataset.annotations if by_name[a["category_id"]] == name and a["image_id"] in image_ids
                and not a.get("iscrowd", 0) and a.get("bbox") is not None]
        chosen[name] = _sample(anns, limit, rng)
    wanted: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for name, anns in chosen.items():
        for ann in anns:
            wanted.setdefault(ann["image_id"], []).append((name, ann))
    images = {im["id"]: im for im in dataset.images}
    crops: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for image_id in sorted(wanted):
        pixels = read_image(dataset.image_file(images[image_id]))
        for name, ann in wanted[image_id]:
            crops[name].append(_crop(pixels, ann["bbox"], size))
    return crops


def _learned_generator(images: list[dict[str, Any]]) -> bool:
    """Whether an image was made by a generator that learns from real images (diffusion, "diffusion:MODE")."""
    return any(str(im.get("generator") or "").split(":")[0] in LEARNED_GENERATORS for im in images)


def package_versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["vision_synth"] = out["vision_synth"] or __version__
    return out


def _provenance(dataset_dir: Path, dataset: CocoDataset, dataset_config, extractor: FeatureExtractor | None,
                reference: Path | None, reference_images: Path | None) -> dict[str, Any]:
    generators = Counter((im.get("generator"), im.get("model"), im.get("model_hash")) for im in dataset.images)
    seeds = sorted({im["seed"] for im in dataset.images if isinstance(im.get("seed"), int)})
    run_file = dataset_dir / ".vision_synth" / "run.json"
    out = {
        "dataset_info": dataset.info,
        "run": json.loads(run_file.read_text()) if run_file.is_file() else None,
        "generators": [{"generator": g, "model": m, "model_hash": h, "images": n}
                       for (g, m, h), n in generators.most_common()],
        "image_seeds": {"count": len(seeds), "min": seeds[0] if seeds else None, "max": seeds[-1] if seeds else None},
        "images": {"total": len(dataset.images),
                   "synthetic": sum(_is_synthetic_image(im) for im in dataset.images)},
        "reference": None if reference is None else {"annotations": str(reference), "images": str(reference_images)},
        "features": None if extractor is None else extractor.describe(),
        "packages": package_versions(),
    }
    if dataset_config is not None:
        out["dataset_config"] = dataset_config.model_dump(mode="json")
        out["config_hash"] = dataset_config.config_hash()
    return out


def _figures(fidelity: FidelityResult | None, memo: DCRResult | None, utility: UtilityResult | None,
             labels: LabelReport, dup: DuplicateReport) -> dict[str, Any]:
    """Gate key → function giving the measured figure."""

    def class_fid():
        values = [c.fid for c in fidelity.per_class if c.fid is not None] if fidelity else []
        return max(values) if values else None

    return {
        "fid_max": lambda: fidelity.fid if fidelity else None,
        "fid_proxy_max": lambda: fidelity.fid if fidelity else None,
        "kid_max": lambda: fidelity.kid_mean if fidelity else None,
        "kid_proxy_max": lambda: fidelity.kid_mean if fidelity else None,
        "class_fid_max": class_fid,
        "min_precision": lambda: fidelity.precision if fidelity else None,
        "min_recall": lambda: fidelity.recall if fidelity else None,
        "min_utility_delta_ap": lambda: utility.delta_ap if utility else None,
        "max_duplicate_fraction": lambda: dup.remaining_fraction,
        "min_dcr": lambda: memo.min if memo else None,
        "max_dcr_close_fraction": lambda: memo.close_fraction if memo else None,
        "max_label_issues": lambda: float(labels.issues),
        "max_box_size_ks": lambda: labels.max_ks("size"),
    }


def _metric_names(proxy: bool) -> dict[str, str]:
    return {
        "fid_max": "FID", "kid_max": "KID", "fid_proxy_max": "FID-proxy", "kid_proxy_max": "KID-proxy",
        "class_fid_max": f"largest per-class {metric_name('FID', proxy)}",
        "min_precision": "precision" + (" (proxy features)" if proxy else ""),
        "min_recall": "recall" + (" (proxy features)" if proxy else ""),
        "min_utility_delta_ap": "AP(real+synthetic) − AP(real)",
        "max_duplicate_fraction": "duplicate fraction (published images)",
        "min_dcr": "smallest normalised DCR", "max_dcr_close_fraction": "fraction of images closer than the "
                                                                       "reference's close quantile",
        "max_label_issues": "label issues", "max_box_size_ks": "largest per-class KS statistic of box size",
    }


@dataclass
class _Images:
    """What a check compares: the dataset's synthetic images and the reference, their perceptual
    hashes, and the features of a seeded sample of each (None without an extractor)."""

    annotations: Path
    images_dir: Path
    dataset: CocoDataset
    synthetic: list[dict[str, Any]]
    reference: CocoDataset | None
    hashes: np.ndarray | None = None
    reference_hashes: np.ndarray | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    features: np.ndarray | None = None
    reference_sample: list[dict[str, Any]] = field(default_factory=list)
    reference_features: np.ndarray | None = None


class _Check:
    """One run of the checks; each step a method, called in order by `run_quality`."""

    def __init__(self, dataset_dir: Path, spec: QualitySpec, inputs: QualityInputs, progress: bool) -> None:
        self.dataset_dir, self.spec, self.inputs, self.progress = dataset_dir, spec, inputs, progress
        self.notes: list[str] = []
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()
        self.extractor: FeatureExtractor | None = None

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock
        self._clock = now

    def bar(self, items, desc: str):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="img", disable=not self.progress, leave=False)

    def read(self, dataset: CocoDataset, images: list[dict[str, Any]], desc: str):
        return (read_image(dataset.image_file(im)) for im in self.bar(images, desc))

    def load(self) -> _Images:
        annotations = gates.current_annotations(self.dataset_dir)
        images_dir = _images_dir(self.dataset_dir)
        dataset = load_coco(annotations, images_dir)
        reference = (load_coco(self.inputs.reference, self.inputs.reference_images)
                     if self.inputs.reference is not None else None)
        synthetic = [im for im in dataset.images if _is_synthetic_image(im)]
        if not synthetic:
            raise DatasetError(f"{annotations}: no synthetic image to check (every image has \"synthetic\": false)")
        if len(synthetic) < len(dataset.images):
            self.notes.append(f"{len(dataset.images) - len(synthetic)} images flagged \"synthetic\": false are "
                              "counted but left out of fidelity, duplicates and memorisation")
        self.lap("load")
        return _Images(annotations, images_dir, dataset, synthetic, reference)

    def hash_images(self, images: _Images) -> None:
        images.hashes = np.stack([phash(im) for im in self.read(images.dataset, images.synthetic, "hash synthetic")])
        ref = images.reference
        if self.spec.duplicates.against_reference and ref is not None and ref.images:
            images.reference_hashes = np.stack([phash(im) for im in self.read(ref, ref.images, "hash reference")])
        self.lap("hashes")

    def extract_features(self, images: _Images) -> None:
        fid = self.spec.fidelity
        if fid.features == "off":
            return
        self.extractor = load_extractor(fid.features, self.spec.resolve(fid.weights), fid.layer, fid.device,
                                        fid.batch_size, fid.seed)
        images.sample = _sample(images.synthetic, fid.max_images, _rng(fid.seed, 1))
        images.features = self.extractor(self.read(images.dataset, images.sample, "features synthetic"))
        images.reference_sample = _sample(images.reference.images, fid.max_images, _rng(fid.seed, 2))
        images.reference_features = self.extractor(self.read(images.reference, images.reference_sample,
                                                             "features reference"))
        self.lap("features")

    def duplicates(self, images: _Images) -> DuplicateReport:
        """Near-duplicates; with action remove, the annotations are rewritten without them and `images`
        loses them too, so every later figure describes what is published."""
        dup = self.spec.duplicates
        with_features = images.features is not None and dup.feature_min_cosine is not None
        if with_features and self.extractor.is_proxy:
            with_features = False
            self.notes.append("feature-cosine duplicates not checked: proxy features do not measure image "
                              "content (the perceptual hash still does)")
        against_reference = with_features and dup.against_reference
        pairs = find_duplicates(
            [im["id"] for im in images.synthetic], images.hashes,
            [im["id"] for im in images.reference.images] if images.reference_hashes is not None else None,
            images.reference_hashes, dup.phash_max_distance,
            feature_ids=[im["id"] for im in images.sample] if with_features else None,
            features=images.features if with_features else None,
            reference_feature_ids=[im["id"] for im in images.reference_sample] if against_reference else None,
            reference_features=images.reference_features if against_reference else None,
            feature_min_cosine=dup.feature_min_cosine if with_features else None)
        report = DuplicateReport(len(images.synthetic), pairs, action=dup.action, settings=dup.model_dump(mode="json"))
        if dup.action == "remove" and report.flagged:
            remove_images(images.annotations, report.flagged)
            report.removed = report.flagged
            gone = set(report.removed)
            images.dataset = load_coco(images.annotations, images.images_dir)
            images.synthetic = [im for im in images.synthetic if im["id"] not in gone]
            if images.features is not None:
                keep = [k for k, im in enumerate(images.sample) if im["id"] not in gone]
                images.sample, images.features = [images.sample[k] for k in keep], images.features[keep]
            if len(images.synthetic) < 2:
                raise DatasetError(f"{images.annotations}: fewer than 2 images left after removing duplicates")
        self.lap("duplicates")
        return report

    def labels(self, images: _Images) -> LabelReport:
        report = check_labels(images.dataset, images.reference, self.spec.labels.min_area, self.spec.labels.min_side)
        self.lap("labels")
        return report

    def fidelity(self, images: _Images) -> FidelityResult | None:
        if self.extractor is None:
            return None
        if min(len(images.features), len(images.reference_features)) < 2:
            self.notes.append("fidelity not measured: it needs at least 2 images on each side")
            return None
        fid = self.spec.fidelity
        class_features = None
        if fid.per_class:
            ref = images.reference
            names = [c["name"] for c in images.dataset.categories if c["name"] in ref.category_names.values()]
            ours = _class_crops(images.dataset, {im["id"] for im in images.synthetic}, names,
                                fid.max_crops_per_class, fid.crop_size, _rng(fid.seed, 3))
            theirs = _class_crops(ref, {im["id"] for im in ref.images}, names, fid.max_crops_per_class,
                                  fid.crop_size, _rng(fid.seed, 4))
            class_features = {n: (self.extractor(self.bar(ours[n], f"crops {n}")),
                                  self.extractor(self.bar(theirs[n], f"reference crops {n}"))) for n in names}
        result = measure_fidelity(
            images.features, images.reference_features, proxy=self.extractor.is_proxy,
            extractor=self.extractor.describe(), kid_subset_size=fid.kid_subset_size, kid_subsets=fid.kid_subsets,
            pr_k=fid.pr_k, pr_min_samples=fid.pr_min_samples, seed=fid.seed, class_features=class_features,
            min_crops=fid.min_crops_per_class)
        self.lap("fidelity")
        return result

    def memorisation(self, images: _Images) -> DCRResult | None:
        run = self.inputs.run_memorisation
        if run is None:  # auto: a learned generator could have memorised its training images
            run = (_learned_generator(images.synthetic) and self.extractor is not None
                   and images.reference is not None)
            if not run:
                self.notes.append("memorisation (DCR) not run: no learned generator in the provenance "
                                  "(set memorisation.enabled: true to run it)")
        if not run:
            return None
        memo, spec = self.spec.memorisation, self.spec
        if memo.train_reference is not None:
            path = spec.resolve(memo.train_reference)
            train = load_coco(path, spec.resolve(memo.train_reference_images) or path.parent)
            chosen = _sample(train.images, spec.fidelity.max_images, _rng(spec.fidelity.seed, 5))
            train_features = self.extractor(self.read(train, chosen, "features training set"))
        else:
            train_features = images.reference_features
        if len(train_features) < 2:
            self.notes.append("memorisation not measured: it needs at least 2 training images")
            return None
        result = dcr(images.features, train_features, memo.close_quantile, memo.copy_tolerance)
        self.lap("memorisation")
        return result

    def utility(self, images: _Images) -> UtilityResult | None:
        if not self.inputs.run_utility:
            return None
        u, spec = self.spec.utility, self.spec
        train = u.train
        if train.weights is not None:
            train = train.model_copy(update={"weights": spec.resolve(train.weights)})
        result = measure_utility(images.annotations, images.images_dir, self.inputs.reference,
                                 self.inputs.reference_images, train, u.seeds, u.val_fraction, u.split_seed,
                                 spec.resolve(u.reference_val), spec.resolve(u.reference_val_images),
                                 progress=self.progress)
        self.lap("utility")
        return result

    def write(self, report: QualityReport, images: _Images, command: str) -> None:
        """quality.json, report.html, the card; then the published or rejected state."""
        from vision_synth.quality.card import render_card, render_report

        out = self.dataset_dir
        card = gates.CARD if report.passed else gates.rejected_name(out / gates.CARD).name
        report.files = {"quality.json": out / QUALITY_JSON, "report.html": out / REPORT_HTML, "card": out / card}
        grid = _sample_grid(images.annotations, images.images_dir, self.spec.sample_grid)
        write_atomic(report.files["quality.json"], json.dumps(_jsonable(report.to_json()), indent=2) + "\n")
        write_atomic(report.files["report.html"], render_report(report, grid))
        if report.passed:
            if gates.is_rejected(out):
                gates.publish(out)
        else:
            gates.reject(out, gates.rejection_note(out, report.failed, command))
        write_atomic(report.files["card"], render_card(report))


def run_quality(dataset_dir: str | Path, spec: QualitySpec | None = None, *, reference: str | Path | None = None,
                reference_images: str | Path | None = None, utility: bool | None = None, dataset_config=None,
                progress: bool = True, command: str | None = None) -> QualityReport:
    """Run the configured checks on the dataset in `dataset_dir` against the reference (arguments
    override `spec.reference`), apply the gate and write quality.json, report.html and the dataset
    card. Returns the report; the directory is published when `report.passed`, else rejected (call
    `report.raise_if_failed()` for exit code 3). `utility` overrides `spec.utility.enabled`;
    `dataset_config`: the generating DatasetConfig, for the card's provenance; `command`: how to
    check again, for REJECTED.md."""
    dataset_dir = Path(dataset_dir)
    spec = spec or QualitySpec()
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: no such dataset directory")
    gates.current_annotations(dataset_dir)
    inputs = check_quality_inputs(spec, reference, reference_images, utility)
    check = _Check(dataset_dir, spec, inputs, progress)
    images = check.load()
    check.hash_images(images)
    check.extract_features(images)
    duplicates = check.duplicates(images)
    labels = check.labels(images)
    fidelity = check.fidelity(images)
    memorisation = check.memorisation(images)
    utility_result = check.utility(images)

    proxy = check.extractor is not None and check.extractor.is_proxy
    results = gates.evaluate(spec.gate, _figures(fidelity, memorisation, utility_result, labels, duplicates),
                             _metric_names(proxy))
    report = QualityReport(
        dataset_dir=dataset_dir, spec=spec, passed=all(g.passed for g in results), gates=results, labels=labels,
        duplicates=duplicates, fidelity=fidelity, memorisation=memorisation, utility=utility_result,
        provenance=_provenance(dataset_dir, images.dataset, dataset_config, check.extractor, inputs.reference,
                               inputs.reference_images),
        notes=check.notes, seconds=check.seconds, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if command is None:
        command = f"vision-synth check {dataset_dir}"
        if inputs.reference is not None:
            command += f" --reference {inputs.reference} --reference-images {inputs.reference_images}"
    check.write(report, images, command)
    return report


def _sample_grid(annotations: Path, images_dir: Path, count: int) -> bytes | None:
    """PNG bytes of the first `count` images with their labels drawn (vision_synth.preview)."""
    if count <= 0:
        return None
    import tempfile

    from vision_synth.preview import render_preview

    with tempfile.TemporaryDirectory(prefix="vision_synth_grid_") as tmp:
        out = render_preview(annotations, images_dir, Path(tmp) / "grid.png", max_images=count, tile=192)
        return out.read_bytes()


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
