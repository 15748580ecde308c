"""`measure_quality`: every quality check on a dataset's annotations, and the gate's verdict, as a
QualityReport. It measures only: nothing here writes or renames a dataset's files (the publisher,
vision_synth/publish.py, does that after the gate).

Order (data moves one way): check inputs → perceptual hashes and features → duplicates (left out
of every later figure when configured to be removed, so each describes what would be published)
→ label sanity and distributions → fidelity (on tiles when the reference has too few images) →
memorisation → utility → gate. Each step is a function from values to values; random choices come
from `vision_synth.seeding.rng_for` streams named by purpose (STREAMS).
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass, field, replace
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
from vision_synth.coco.reader import is_synthetic
from vision_synth.quality import gate as gates
from vision_synth.quality.duplicates import DuplicateReport, find_duplicates, phash
from vision_synth.quality.features import FeatureExtractor, inception_weights_path, load_extractor
from vision_synth.quality.fidelity import FidelityResult, measure_fidelity
from vision_synth.quality.labels import LabelReport, check_labels
from vision_synth.quality.memorisation import DCRResult, dcr
from vision_synth.quality.report import QualityReport
from vision_synth.quality.spec import QualitySpec
from vision_synth.seeding import rng_for

PACKAGES = ("vision_synth", "torch", "torchvision", "numpy", "scipy", "pycocotools", "opencv-python-headless",
            "pillow", "torch-fidelity", "torchmetrics", "diffusers", "albumentations", "matplotlib")
LEARNED_GENERATORS = ("diffusion",)
CROP_PAD = 0.1  # context around an instance crop, as a fraction of its box side


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
    # `utility.require` asks for the check; an explicit utility=False leaves a required one not measured
    require = getattr(spec.utility, "require", None)
    run_utility = (spec.utility.enabled or require is not None) if utility is None else bool(utility)
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
    if run_utility and spec.utility.reference_val is not None:  # its records and image files, before any work
        from vision_synth.coco.reader import load_coco

        load_coco(spec.resolve(spec.utility.reference_val), spec.resolve(spec.utility.reference_val_images))
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


# every random choice of a check, one stream each: rng_for(fidelity.seed, STREAMS[purpose])
STREAMS = {"synthetic images": 1, "reference images": 2, "synthetic crops": 3, "reference crops": 4,
           "training images": 5, "kid subsets": 6, "synthetic tiles": 7, "reference tiles": 8}


def stream(seed: int, purpose: str) -> np.random.Generator:
    """The generator of one purpose of a check (never shared between two purposes)."""
    return rng_for(seed, STREAMS[purpose])


def _sample(items: list, limit: int, rng: np.random.Generator) -> list:
    """At most `limit` of `items`, a seeded choice kept in the original order."""
    if len(items) <= limit:
        return list(items)
    return [items[k] for k in sorted(rng.choice(len(items), limit, replace=False))]


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
        pixels = dataset.read_image(images[image_id])
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
    # (as text when a record holds something else there: a foreign dataset's own provenance fields)
    generators = Counter(tuple(v if v is None or isinstance(v, str) else json.dumps(v) for v in
                               (im.get("generator"), im.get("model"), im.get("model_hash"))) for im in dataset.images)
    seeds = sorted({im["seed"] for im in dataset.images if isinstance(im.get("seed"), int)})
    run_file = dataset_dir / ".vision_synth" / "run.json"
    out = {
        "dataset_info": dataset.info,
        "run": json.loads(run_file.read_text()) if run_file.is_file() else None,
        "generators": [{"generator": g, "model": m, "model_hash": h, "images": n}
                       for (g, m, h), n in generators.most_common()],
        "image_seeds": {"count": len(seeds), "min": seeds[0] if seeds else None, "max": seeds[-1] if seeds else None},
        "images": {"total": len(dataset.images),
                   "synthetic": sum(is_synthetic(im) for im in dataset.images)},
        "reference": None if reference is None else {"annotations": str(reference), "images": str(reference_images)},
        "features": None if extractor is None else extractor.describe(),
        "packages": package_versions(),
    }
    if dataset_config is not None:
        out["dataset_config"] = dataset_config.model_dump(mode="json")
        out["config_hash"] = dataset_config.config_hash()
    return out


def _tile_size(images: list[dict[str, Any]], per_side: int) -> int:
    """Tile side for few references: the shortest image side over `per_side`, at least 16 px."""
    return max(16, min(min(im["height"], im["width"]) for im in images) // per_side)


def tiles(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Square tiles of side `size` on a grid with stride size/2 (overlapping by half), row by row."""
    h, w = image.shape[:2]
    step = max(1, size // 2)
    return [image[y : y + size, x : x + size] for y in range(0, h - size + 1, step)
            for x in range(0, w - size + 1, step)]


@dataclass(frozen=True)
class Images:
    """What a check compares: the dataset's synthetic images (after duplicate removal when that is
    configured) and the reference, their perceptual hashes, and the features of a seeded sample of
    each (None without an extractor)."""

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

    def without(self, image_ids: set[int]) -> Images:
        """The same images less `image_ids` (removed duplicates), in memory: nothing is rewritten."""
        if not image_ids:
            return self
        keep = [k for k, im in enumerate(self.sample) if im["id"] not in image_ids]
        return replace(self, dataset=_dataset_without(self.dataset, image_ids),
                       synthetic=[im for im in self.synthetic if im["id"] not in image_ids],
                       sample=[self.sample[k] for k in keep],
                       features=None if self.features is None else self.features[keep])


def _dataset_without(dataset: CocoDataset, image_ids: set[int]) -> CocoDataset:
    return replace(dataset, images=[im for im in dataset.images if im["id"] not in image_ids],
                   annotations=[a for a in dataset.annotations if a["image_id"] not in image_ids],
                   _by_image={k: v for k, v in dataset._by_image.items() if k not in image_ids})


class Context:
    """How a check runs (progress bars, timing, notes), separate from what it measures."""

    def __init__(self, progress: bool, cache: Path | None = None) -> None:
        self.progress = progress
        self.cache = cache  # where measurements that can be reused are kept (the real-only utility runs)
        self.notes: list[str] = []
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock
        self._clock = now

    def bar(self, items, desc: str):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="img", disable=not self.progress, leave=False)

    def read(self, dataset: CocoDataset, images: list[dict[str, Any]], desc: str):
        return (dataset.read_image(im) for im in self.bar(images, desc))


def load_images(annotations: Path, images_dir: Path, inputs: QualityInputs, ctx: Context) -> Images:
    dataset = load_coco(annotations, images_dir)
    reference = load_coco(inputs.reference, inputs.reference_images) if inputs.reference is not None else None
    synthetic = [im for im in dataset.images if is_synthetic(im)]
    if not synthetic:
        raise DatasetError(f"{annotations}: no image flagged \"synthetic\": true to check (a record without the "
                           "flag is real)")
    if len(synthetic) < len(dataset.images):
        ctx.notes.append(f"{len(dataset.images) - len(synthetic)} real images (not flagged \"synthetic\": true) are "
                         "counted but left out of fidelity, duplicates and memorisation")
    ctx.lap("load")
    return Images(annotations, images_dir, dataset, synthetic, reference)


def hash_images(images: Images, spec: QualitySpec, ctx: Context) -> Images:
    hashes = np.stack([phash(im) for im in ctx.read(images.dataset, images.synthetic, "hash synthetic")])
    ref, reference_hashes = images.reference, None
    if spec.duplicates.against_reference and ref is not None and ref.images:
        reference_hashes = np.stack([phash(im) for im in ctx.read(ref, ref.images, "hash reference")])
    ctx.lap("hashes")
    return replace(images, hashes=hashes, reference_hashes=reference_hashes)


def feature_extractor(spec: QualitySpec) -> FeatureExtractor | None:
    fid = spec.fidelity
    if fid.features == "off":
        return None
    return load_extractor(fid.features, spec.resolve(fid.weights), fid.layer, fid.device, fid.batch_size, fid.seed)


def extract_features(images: Images, extractor: FeatureExtractor | None, spec: QualitySpec, ctx: Context) -> Images:
    if extractor is None:
        return images
    fid = spec.fidelity
    sample = _sample(images.synthetic, fid.max_images, stream(fid.seed, "synthetic images"))
    reference_sample = _sample(images.reference.images, fid.max_images, stream(fid.seed, "reference images"))
    out = replace(images, sample=sample, features=extractor(ctx.read(images.dataset, sample, "features synthetic")),
                  reference_sample=reference_sample,
                  reference_features=extractor(ctx.read(images.reference, reference_sample, "features reference")))
    ctx.lap("features")
    return out


def find_image_duplicates(images: Images, extractor: FeatureExtractor | None, spec: QualitySpec,
                          ctx: Context) -> DuplicateReport:
    """Near-duplicates; with action remove, `removed` lists the images the publisher leaves out."""
    dup = spec.duplicates
    with_features = images.features is not None and dup.feature_min_cosine is not None
    if with_features and extractor.is_proxy:
        with_features = False
        ctx.notes.append("feature-cosine duplicates not checked: proxy features do not measure image "
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
        report.removed = report.flagged
        if len(images.synthetic) - len(report.removed) < 2:
            raise DatasetError(f"{images.annotations}: fewer than 2 images left after removing duplicates")
    ctx.lap("duplicates")
    return report


def label_sanity(images: Images, spec: QualitySpec, ctx: Context) -> LabelReport:
    report = check_labels(images.dataset, images.reference, spec.labels.min_area, spec.labels.min_side)
    ctx.lap("labels")
    return report


def _tile_features(images: Images, extractor: FeatureExtractor, spec: QualitySpec, ctx: Context
                   ) -> tuple[np.ndarray, np.ndarray, str]:
    """Features of tiles of every reference image and of a seeded sample of synthetic tiles of the
    same size (at most max_images of each side)."""
    fid = spec.fidelity
    ref = images.reference
    size = _tile_size(ref.images, fid.tiles_per_side)
    reference_tiles = [t for im in ctx.read(ref, ref.images, "tiles reference") for t in tiles(im, size)]
    reference_tiles = _sample(reference_tiles, fid.max_images, stream(fid.seed, "reference tiles"))
    # tiles of a seeded sample of synthetic images, then a seeded sample of those tiles
    per_image = max(1, len(tiles(np.zeros((ref.images[0]["height"], ref.images[0]["width"]), np.uint8), size)))
    chosen = _sample(images.synthetic, max(1, -(-fid.max_images // per_image)), stream(fid.seed, "synthetic images"))
    synthetic_tiles = [t for im in ctx.read(images.dataset, chosen, "tiles synthetic") for t in tiles(im, size)]
    synthetic_tiles = _sample(synthetic_tiles, fid.max_images, stream(fid.seed, "synthetic tiles"))
    note = (f"fidelity measured on tiles: the reference has {len(ref.images)} images, fewer than "
            f"fidelity.min_reference_images={fid.min_reference_images}, so FID, KID and precision/recall compare "
            f"{len(synthetic_tiles)} synthetic with {len(reference_tiles)} reference tiles of {size}×{size} px "
            "(stride half a tile); figures on tiles are not comparable with figures on whole images")
    return extractor(ctx.bar(synthetic_tiles, "features synthetic tiles")), \
        extractor(ctx.bar(reference_tiles, "features reference tiles")), note


def measure_image_fidelity(images: Images, extractor: FeatureExtractor | None, spec: QualitySpec,
                           ctx: Context) -> FidelityResult | None:
    if extractor is None:
        return None
    fid = spec.fidelity
    synthetic, reference, unit, unit_note = images.features, images.reference_features, "images", ""
    if len(images.reference.images) < fid.min_reference_images:
        synthetic, reference, unit_note = _tile_features(images, extractor, spec, ctx)
        unit = "tiles"
        ctx.notes.append(unit_note)
    if min(len(synthetic), len(reference)) < 2:
        ctx.notes.append(f"fidelity not measured: it needs at least 2 {unit} on each side")
        return None
    class_features = None
    if fid.per_class:
        ref = images.reference
        names = [c["name"] for c in images.dataset.categories if c["name"] in ref.category_names.values()]
        ours = _class_crops(images.dataset, {im["id"] for im in images.synthetic}, names,
                            fid.max_crops_per_class, fid.crop_size, stream(fid.seed, "synthetic crops"))
        theirs = _class_crops(ref, {im["id"] for im in ref.images}, names, fid.max_crops_per_class,
                              fid.crop_size, stream(fid.seed, "reference crops"))
        class_features = {n: (extractor(ctx.bar(ours[n], f"crops {n}")),
                              extractor(ctx.bar(theirs[n], f"reference crops {n}"))) for n in names}
    result = measure_fidelity(
        synthetic, reference, proxy=extractor.is_proxy, extractor=extractor.describe(),
        rng=stream(fid.seed, "kid subsets"), kid_subset_size=fid.kid_subset_size, kid_subsets=fid.kid_subsets,
        pr_k=fid.pr_k, pr_min_samples=fid.pr_min_samples, class_features=class_features,
        min_crops=fid.min_crops_per_class, unit=unit, unit_note=unit_note)
    ctx.lap("fidelity")
    return result


def measure_memorisation(images: Images, extractor: FeatureExtractor | None, spec: QualitySpec,
                         inputs: QualityInputs, ctx: Context) -> DCRResult | None:
    run = inputs.run_memorisation
    if run is None:  # auto: a learned generator could have memorised its training images
        run = _learned_generator(images.synthetic) and extractor is not None and images.reference is not None
        if not run:
            ctx.notes.append("memorisation (DCR) not run: no learned generator in the provenance "
                             "(set memorisation.enabled: true to run it)")
    if not run:
        return None
    memo = spec.memorisation
    if memo.train_reference is not None:
        path = spec.resolve(memo.train_reference)
        train = load_coco(path, spec.resolve(memo.train_reference_images) or path.parent)
        chosen = _sample(train.images, spec.fidelity.max_images, stream(spec.fidelity.seed, "training images"))
        train_features = extractor(ctx.read(train, chosen, "features training set"))
    else:
        train_features = images.reference_features
    if len(train_features) < 2:
        ctx.notes.append("memorisation not measured: it needs at least 2 training images")
        return None
    result = dcr(images.features, train_features, memo.close_quantile, memo.copy_tolerance)
    ctx.lap("memorisation")
    return result


def measure_dataset_utility(images: Images, removed: list[int], spec: QualitySpec, inputs: QualityInputs,
                            ctx: Context):
    """The utility result (vision_synth.quality.utility), or None when it is not run. Without removed
    duplicates it trains on the checked file itself; else on a temporary copy without them."""
    if not inputs.run_utility:
        if getattr(spec.utility, "require", None) is not None:
            ctx.notes.append("utility not measured: the check ran without it (utility.require fails)")
        return None
    import tempfile

    from vision_synth.publish import without_images
    from vision_synth.quality.utility import measure_utility

    u = spec.utility
    train = u.train
    if train.weights is not None:
        train = train.model_copy(update={"weights": spec.resolve(train.weights)})
    with tempfile.TemporaryDirectory(prefix="vision_synth_check_") as tmp:
        annotations = images.annotations
        if removed:
            annotations = Path(tmp) / "annotations.json"
            write_atomic(annotations, without_images(images.annotations.read_text(), removed))
        result = measure_utility(annotations, images.images_dir, inputs.reference, inputs.reference_images, train,
                                 u.seeds, u.val_fraction, u.split_seed, spec.resolve(u.reference_val),
                                 spec.resolve(u.reference_val_images), max_seeds=u.max_seeds,
                                 cache=ctx.cache,
                                 progress=ctx.progress)
    ctx.lap("utility")
    return result


def measure_quality(dataset_dir: str | Path, spec: QualitySpec | None = None, *, annotations: Path | None = None,
                    reference: str | Path | None = None, reference_images: str | Path | None = None,
                    utility: bool | None = None, dataset_config=None, progress: bool = True,
                    command: str | None = None) -> QualityReport:
    """Run the configured checks on the dataset in `dataset_dir` (its `annotations`, default the
    directory's current annotations file) against the reference (arguments override
    `spec.reference`) and apply the gate. Writes nothing; vision_synth.publish.check_and_publish
    writes the verdict. `utility` overrides `spec.utility.enabled`; `dataset_config`: the generating
    DatasetConfig, for the card's provenance; `command`: how to check again, for REJECTED.md."""
    from vision_synth.publish import current_annotations

    dataset_dir = Path(dataset_dir)
    spec = spec or QualitySpec()
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: no such dataset directory")
    annotations = Path(annotations) if annotations is not None else current_annotations(dataset_dir)
    inputs = check_quality_inputs(spec, reference, reference_images, utility)
    ctx = Context(progress, dataset_dir / ".vision_synth" / "utility")
    images = load_images(annotations, _images_dir(dataset_dir), inputs, ctx)
    images = hash_images(images, spec, ctx)
    extractor = feature_extractor(spec)
    images = extract_features(images, extractor, spec, ctx)
    duplicates = find_image_duplicates(images, extractor, spec, ctx)
    images = images.without(set(duplicates.removed))  # every later figure describes what is published
    labels = label_sanity(images, spec, ctx)
    fidelity = measure_image_fidelity(images, extractor, spec, ctx)
    memorisation = measure_memorisation(images, extractor, spec, inputs, ctx)
    utility_result = measure_dataset_utility(images, duplicates.removed, spec, inputs, ctx)

    measured = _Measured(fidelity, memorisation, utility_result, labels, duplicates)
    results = gates.evaluate(spec, measured, proxy=extractor is not None and extractor.is_proxy)
    if command is None:
        command = f"vision-synth check {dataset_dir}"
        if inputs.reference is not None:
            command += f" --reference {inputs.reference} --reference-images {inputs.reference_images}"
    return QualityReport(
        dataset_dir=dataset_dir, annotations=annotations, images_dir=images.images_dir, spec=spec,
        passed=all(g.passed for g in results), gates=results, labels=labels, duplicates=duplicates,
        fidelity=fidelity, memorisation=memorisation, utility=utility_result,
        provenance=_provenance(dataset_dir, images.dataset, dataset_config, extractor, inputs.reference,
                               inputs.reference_images),
        notes=ctx.notes, seconds=ctx.seconds, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command=command)


@dataclass(frozen=True)
class _Measured:
    fidelity: FidelityResult | None
    memorisation: DCRResult | None
    utility: Any
    labels: LabelReport
    duplicates: DuplicateReport
