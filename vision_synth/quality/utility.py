"""Utility of synthetic data: does a detector trained with it do better on real images?

Two arms with one budget (vision_synth/detector.py): (a) the real training images alone, (b) the
same real images filling a fixed share of every batch (`TrainConfig.real_share`) and the synthetic
dataset the rest. Seeds are paired: seed s gives both arms the same initialisation and the same
real slots of every batch, so arm (a) does not depend on which synthetic set is compared. Both are
scored by COCOeval on held-out real images.

The figure is the relative median delta, median AP(b) / median AP(a) − 1 over the seeds, with a
paired bootstrap 95% interval; the verdict is `helps` (interval above 0), `hurts` (below 0) or
`no-evidence`. A decisive verdict also needs the pairs to agree beyond chance: the exact two-sided
sign test over the paired seeds below 0.05. With 5 seeds the percentile bootstrap excludes 0
whenever all five pairs point one way, which happens to a placebo 1 time in 16 (measured: a
flips-only placebo came out "hurts", 5 of 5 seeds lower); the sign test cannot pass below 6 seeds
(6 of 6, 7 of 7, 8 of 8 or 8 of 9 pairs one way), so such a result is open and gets more seeds. A seed whose AP is under a quarter of its arm's median is reported as collapsed.
When the first seeds leave the verdict open but most pairs point one way, more seeds are added
(up to `max_seeds`): a close call is decided by more evidence, not by one run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision_synth import __version__
from vision_synth.coco.reader import load_coco
from vision_synth.coco.split import assign_splits, subset
from vision_synth.files import write_json
from vision_synth.detector import DetectionMetrics, TrainConfig, evaluate_detector, train_detector
from vision_synth.errors import DatasetError
from vision_synth.seeding import rng_for

ARMS = ("real", "real+synthetic")
VERDICTS = ("helps", "hurts", "no-evidence")
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 4000
COLLAPSE_FRACTION = 0.25  # a seed under this fraction of its arm's median AP collapsed
_BOOTSTRAP_STREAM = 0xB007


@dataclass(frozen=True)
class UtilityRun:
    arm: str
    seed: int
    metrics: DetectionMetrics
    train_seconds: float
    final_loss: float


def relative_median_delta(real: np.ndarray, synthetic: np.ndarray) -> float:
    """median(synthetic) / median(real) − 1 (0 when both medians are 0)."""
    a, b = float(np.median(real)), float(np.median(synthetic))
    if a <= 0:
        return 0.0 if b <= 0 else float("inf")
    return b / a - 1.0


def bootstrap_interval(real: np.ndarray, synthetic: np.ndarray, confidence: float = CONFIDENCE,
                       samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Percentile interval of the relative median delta over paired resamples of the seeds."""
    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    rng = rng_for(0, len(real), _BOOTSTRAP_STREAM)
    picks = rng.integers(len(real), size=(samples, len(real)))
    a, b = np.median(real[picks], axis=1), np.median(synthetic[picks], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        deltas = np.where(a > 0, b / np.where(a > 0, a, 1.0) - 1.0, np.where(b > 0, np.inf, 0.0))
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(deltas, [tail, 100 - tail])
    return float(lo), float(hi)


SIGN_TEST_ALPHA = 0.05


def sign_test_p(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Exact two-sided sign test of the paired differences (ties left out): how likely pairs this
    one-sided are when neither arm is better."""
    from scipy.stats import binomtest

    d = np.asarray(synthetic, float) - np.asarray(real, float)
    up, down = int((d > 0).sum()), int((d < 0).sum())
    return 1.0 if up + down == 0 else float(binomtest(up, up + down, 0.5).pvalue)


def verdict_of(interval: tuple[float, float], sign_p: float) -> str:
    """`helps` or `hurts` when the interval excludes 0 on that side and the sign test agrees
    (`sign_p` below SIGN_TEST_ALPHA), else `no-evidence`."""
    lo, hi = interval
    if sign_p >= SIGN_TEST_ALPHA:
        return "no-evidence"
    return "helps" if lo > 0 else "hurts" if hi < 0 else "no-evidence"


def collapsed_seeds(seeds: list[int], aps: np.ndarray) -> list[int]:
    median = float(np.median(aps))
    return [s for s, ap in zip(seeds, aps) if ap < COLLAPSE_FRACTION * median]


def leaning(real: np.ndarray, synthetic: np.ndarray) -> bool:
    """Whether an open result leans one way enough to be worth more seeds: at least 70% of the pairs
    differ in the same direction."""
    d = np.sign(np.asarray(synthetic) - np.asarray(real))
    return max((d > 0).sum(), (d < 0).sum()) >= 0.7 * len(d)


@dataclass
class UtilityResult:
    train: TrainConfig
    runs: list[UtilityRun]
    images: dict[str, int]  # real_train, synthetic, val
    dropped_annotations: int  # synthetic annotations of classes the reference does not have
    seconds: float

    def arm(self, name: str) -> list[UtilityRun]:
        return sorted((r for r in self.runs if r.arm == name), key=lambda r: r.seed)

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    def values(self, name: str, metric: str = "ap") -> np.ndarray:
        return np.array([getattr(r.metrics, metric) for r in self.arm(name)], float)

    def mean(self, name: str, metric: str = "ap") -> float:
        return float(np.mean(self.values(name, metric)))

    def median(self, name: str, metric: str = "ap") -> float:
        return float(np.median(self.values(name, metric)))

    @property
    def delta_ap(self) -> float:
        return self.mean("real+synthetic") - self.mean("real")

    @property
    def delta_ap50(self) -> float:
        return self.mean("real+synthetic", "ap50") - self.mean("real", "ap50")

    @property
    def relative_median_delta(self) -> float:
        return relative_median_delta(self.values("real"), self.values("real+synthetic"))

    @property
    def interval(self) -> tuple[float, float]:
        return bootstrap_interval(self.values("real"), self.values("real+synthetic"))

    @property
    def sign_test_p(self) -> float:
        return sign_test_p(self.values("real"), self.values("real+synthetic"))

    @property
    def seeds_better(self) -> int:
        return int((self.values("real+synthetic") > self.values("real")).sum())

    @property
    def verdict(self) -> str:
        return verdict_of(self.interval, self.sign_test_p)

    @property
    def collapsed(self) -> dict[str, list[int]]:
        return {arm: collapsed_seeds(self.seeds, self.values(arm)) for arm in ARMS}

    def per_class(self) -> dict[str, dict[str, float]]:
        """class → {real, real+synthetic, delta}: AP averaged over seeds."""
        names = list(dict.fromkeys(n for r in self.runs for n in r.metrics.per_class))
        out = {}
        for name in names:
            means = {arm: float(np.mean([r.metrics.per_class.get(name, 0.0) for r in self.arm(arm)])) for arm in ARMS}
            out[name] = {**means, "delta": means["real+synthetic"] - means["real"]}
        return out

    def line(self) -> str:
        lo, hi = self.interval
        collapsed = {arm: s for arm, s in self.collapsed.items() if s}
        return (f"utility: {self.verdict}, median AP {self.median('real'):.3f} real vs "
                f"{self.median('real+synthetic'):.3f} real+synthetic, relative median delta "
                f"{self.relative_median_delta:+.1%} (95% interval {lo:+.1%} to {hi:+.1%}, better on "
                f"{self.seeds_better} of {len(self.seeds)} paired seeds, sign test p {self.sign_test_p:.3f}"
                + (f"; collapsed seeds {collapsed}" if collapsed else "") + ")")

    def to_json(self) -> dict[str, Any]:
        arms = {}
        for arm in ARMS:
            ap, ap50 = self.values(arm), self.values(arm, "ap50")
            arms[arm] = {"ap": ap.tolist(), "ap50": ap50.tolist(), "median_ap": float(np.median(ap)),
                         "mean_ap": float(np.mean(ap)), "median_ap50": float(np.median(ap50)),
                         "mean_ap50": float(np.mean(ap50)), "collapsed_seeds": self.collapsed[arm]}
        real, syn = self.arm("real"), self.arm("real+synthetic")
        return {
            "train": self.train.model_dump(mode="json"),
            "seeds": self.seeds,
            "real_share": self.train.real_share,
            "images": self.images,
            "dropped_synthetic_annotations": self.dropped_annotations,
            "arms": arms,
            "paired": [{"seed": a.seed, "delta_ap": b.metrics.ap - a.metrics.ap,
                        "delta_ap50": b.metrics.ap50 - a.metrics.ap50} for a, b in zip(real, syn)],
            "relative_median_delta": self.relative_median_delta,
            "interval": list(self.interval),
            "confidence": CONFIDENCE,
            "seeds_better": self.seeds_better,
            "sign_test_p": self.sign_test_p,
            "verdict": self.verdict,
            "ap": {arm: self.mean(arm) for arm in ARMS},
            "ap50": {arm: self.mean(arm, "ap50") for arm in ARMS},
            "delta_ap": self.delta_ap,
            "delta_ap50": self.delta_ap50,
            "per_class_ap": self.per_class(),
            "runs": [{"arm": r.arm, "seed": r.seed, "ap": r.metrics.ap, "ap50": r.metrics.ap50,
                      "per_class": r.metrics.per_class, "detections": r.metrics.detections,
                      "train_seconds": round(r.train_seconds, 2), "final_loss": r.final_loss} for r in self.runs],
            "seconds": round(self.seconds, 2),
        }


def real_split(reference: Path, reference_images: Path, val_fraction: float, split_seed: int
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train, val) COCO dicts of a seeded image split of the reference (whatever its images' own
    `synthetic` flags say: the reference is what the check treats as real)."""
    dataset = load_coco(reference, reference_images)
    ids = assign_splits(dataset, (1.0 - val_fraction, val_fraction), seed=split_seed, allow_synthetic_eval=True)
    info = {**dataset.info, "split_seed": split_seed, "val_fraction": val_fraction}
    return (subset(dataset, ids["train"], {**info, "split": "train"}),
            subset(dataset, ids["val"], {**info, "split": "val"}))


def _run(arm: str, seed: int, train: TrainConfig, real: tuple[Path, Path], val: tuple[Path, Path],
         extra: tuple[Path, Path] | None, progress: bool) -> UtilityRun:
    detector = train_detector(*real, train.model_copy(update={"seed": int(seed)}), progress=progress, extra=extra)
    metrics = evaluate_detector(detector, *val, progress=progress)
    return UtilityRun(arm, int(seed), metrics, detector.seconds,
                      float(detector.losses[-1]) if detector.losses else float("nan"))


def dataset_fingerprint(annotations: Path, images: Path) -> str:
    """The content of a COCO file and the names and sizes of its image files."""
    data = Path(annotations).read_bytes()
    files = sorted((im["file_name"], (Path(images) / im["file_name"]).stat().st_size)
                   for im in json.loads(data)["images"])
    return hashlib.sha256(data + json.dumps(files).encode()).hexdigest()


def _cached_run(arm: str, seed: int, train: TrainConfig, real: tuple[Path, Path], val: tuple[Path, Path],
                extra: tuple[Path, Path] | None, cache: Path | None, progress: bool) -> UtilityRun:
    """One arm of one seed, from `cache` when an identical run was recorded there. The real-only arm
    does not depend on the synthetic set (nor on `real_share`, which only splits mixed batches), so
    comparing several sets (tune, bench) trains it once; a synthetic arm is keyed by its set's
    content too, so asking for more seeds trains only those. The key holds what the numbers depend
    on: the training settings, the datasets, the device kind and torch's CPU threads (float sums
    are ordered by them)."""
    if cache is None:
        return _run(arm, seed, train, real, val, extra, progress)
    import torch

    from vision_synth.detector import resolve_device

    settings = train.model_copy(update={"seed": int(seed)} if extra is not None else
                                {"seed": int(seed), "real_share": TrainConfig().real_share})
    key = hashlib.sha256(json.dumps({
        "version": __version__, "train": settings.model_dump(mode="json"),
        "device": resolve_device(train.device).type, "threads": torch.get_num_threads(),
        "real": dataset_fingerprint(*real), "val": dataset_fingerprint(*val),
        **({"synthetic": dataset_fingerprint(*extra)} if extra is not None else {})}, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache) / f"{'real' if extra is None else 'synthetic'}-{key}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return UtilityRun(arm, int(seed), DetectionMetrics(**data["metrics"]), data["train_seconds"],
                          data["final_loss"])
    run = _run(arm, seed, train, real, val, extra, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"metrics": asdict(run.metrics), "train_seconds": run.train_seconds,
                      "final_loss": run.final_loss})
    return run


def real_arm_run(reference: Path, reference_images: Path, reference_val: Path, reference_val_images: Path | None,
                 train: TrainConfig, seed: int, cache: Path | None = None, progress: bool = False) -> UtilityRun:
    """The real-only arm of one seed, exactly as `measure_utility(..., reference_val=...)` trains (or
    reads from `cache`) it: `vision-synth tune` fills the cache with these before it splits the
    candidates between processes, so no two processes train the same run."""
    val = (Path(reference_val), Path(reference_val_images or Path(reference_val).parent))
    return _cached_run("real", int(seed), train, (Path(reference), Path(reference_images)), val, None, cache, progress)


def measure_utility(synthetic: Path, synthetic_images: Path, reference: Path, reference_images: Path,
                    train: TrainConfig, seeds: list[int], val_fraction: float = 0.3, split_seed: int = 0,
                    reference_val: Path | None = None, reference_val_images: Path | None = None,
                    max_seeds: int | None = None, cache: Path | None = None,
                    progress: bool = False) -> UtilityResult:
    """Train both arms for every seed and score them on the held-out real images: `reference_val`
    when given (then all of `reference` trains), else a seeded `val_fraction` of `reference`. While
    the verdict is open but leaning (see `leaning`), seeds after the last are added up to
    `max_seeds` in all. `cache`: a folder where runs are kept and reused (real-only runs across
    synthetic sets; a synthetic set's runs when the same set is measured again)."""
    start = time.perf_counter()
    seeds = [int(s) for s in seeds]
    with tempfile.TemporaryDirectory(prefix="vision_synth_utility_") as tmp:
        tmp = Path(tmp)
        if reference_val is not None:
            real_json, real_images = Path(reference), Path(reference_images)
            real_train = load_coco(real_json, real_images)
            val = (Path(reference_val), Path(reference_val_images or Path(reference_val).parent))
            n_train = len(real_train.images)
            names = {c["name"] for c in real_train.categories}
        else:
            train_dict, val_dict = real_split(reference, reference_images, val_fraction, split_seed)
            real_json, real_images = tmp / "real_train.json", Path(reference_images)
            write_json(real_json, train_dict)
            val = (tmp / "real_val.json", Path(reference_images))
            write_json(val[0], val_dict)
            n_train = len(train_dict["images"])
            names = {c["name"] for c in train_dict["categories"]}
        val_set = load_coco(*val)
        if not val_set.annotations:
            raise DatasetError(f"{val[0]}: the held-out real split has no annotations to score on")
        candidate = load_coco(synthetic, synthetic_images)
        dropped = sum(candidate.category_names[a["category_id"]] not in names for a in candidate.annotations)
        if dropped == len(candidate.annotations) and candidate.annotations:
            raise DatasetError(f"{synthetic}: no category name in common with the reference ({', '.join(sorted(names))})")
        real, extra = (real_json, real_images), (Path(synthetic), Path(synthetic_images))
        runs: list[UtilityRun] = []

        def add(seed: int) -> None:
            runs.append(_cached_run("real", seed, train, real, val, None, cache, progress))
            runs.append(_cached_run("real+synthetic", seed, train, real, val, extra, cache, progress))

        for seed in seeds:
            add(seed)
        result = UtilityResult(train, runs, {"real_train": n_train, "synthetic": len(candidate.images),
                                             "val": len(val_set.images)}, dropped, 0.0)
        next_seed = max(seeds) + 1
        while (max_seeds is not None and len(result.seeds) < max_seeds and result.verdict == "no-evidence"
               and leaning(result.values("real"), result.values("real+synthetic"))):
            add(next_seed)
            next_seed += 1
    result.seconds = time.perf_counter() - start
    return result
