"""The learned defect source: a small diffusers UNet2DModel trained with DDPM (v-prediction, EMA
weights) on 4-channel crops (RGB + mask) of one class, so it draws a defect and its mask together
(mask = 4th channel > 0).

Training data are square context crops of the class's real instances on the training part only
(the eval split is left out), augmented every step (flips, rot90, colour jitter, small scale).
Every random choice of step s comes from (seed, s), so a run resumed from a checkpoint takes the
same steps as one that never stopped. Checkpoints: MODEL/checkpoint-NNNNNN/ (unet in safetensors,
optimizer, EMA of the weights, state.json); the final model: MODEL/unet, MODEL/scheduler, MODEL/rare_model.json and
MODEL/training_crops.npz (the un-augmented crops, kept for the memorisation check).

Sampling uses DDIM from the training scheduler's config with per-crop noise from (seed, crop index);
crops whose distance to the closest training crop (DCR) falls below the training crops' own
nearest-neighbour distance quantile are rejected as likely copies.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision_synth.coco.reader import load_coco
from vision_synth.errors import DatasetError, VisionSynthError
from vision_synth.rare.crops import context_crop, instance_alpha
from vision_synth.rare.split import eval_image_ids
from vision_synth.files import (check_new_output, remove_stale_stages_in, remove_tree, stage_path, staged_output,
                                write_json)
from vision_synth.imageio import write_image
from vision_synth.scene.objects import Cutout, trim_cutout
from vision_synth.seeding import rng_for, torch_generator_for, torch_seed_for

META = "rare_model.json"
CROPS = "training_crops.npz"
FEATURE_SIZE = 16  # crops are compared for DCR at 16×16×4
MASK_SIGMA = 1.0  # pixels: Gaussian smoothing of a sampled mask channel before thresholding
OBJECTIVE = "v_prediction"  # what the UNet predicts (checkpoints of another objective are not resumed)


@dataclass(frozen=True)
class TrainSpec:
    category: str
    steps: int = 2000
    size: int = 32
    batch_size: int = 16
    checkpoint_every: int = 200
    seed: int = 0
    learning_rate: float = 1e-3
    keep_checkpoints: int = 2
    channels: tuple[int, int] = (16, 32)  # UNet block widths (multiples of 8): tiny, trains on a CPU

    def check(self) -> None:
        if self.size < 8 or self.size % 4:
            raise VisionSynthError(f"--size {self.size}: must be a multiple of 4, at least 8")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise VisionSynthError("--steps, --batch-size and --checkpoint-every must be at least 1")


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    steps: int
    resumed_from: int
    crops: int
    seconds: float
    device: str

    @property
    def steps_per_second(self) -> float:
        done = self.steps - self.resumed_from
        return done / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        resumed = f", resumed from step {self.resumed_from}" if self.resumed_from else ""
        return (f"{self.folder}: trained {self.steps} steps on {self.crops} crops ({self.device}, "
                f"{self.steps_per_second:.2f} steps/s{resumed})")


@dataclass(frozen=True, eq=False)
class LearnedModel:
    folder: Path
    unet: Any
    scheduler: Any
    meta: dict
    training_crops: np.ndarray  # N×S×S×4 uint8 (mask channel 0/255)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_unet(size: int, seed: int, channels: tuple[int, int] = (16, 32)):
    import torch
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed_for(seed, 0, 1))
        return UNet2DModel(sample_size=size, in_channels=4, out_channels=4, layers_per_block=1,
                           block_out_channels=tuple(channels), norm_num_groups=8,
                           down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))


def build_scheduler():
    from diffusers import DDPMScheduler

    # v-prediction: with a tiny UNet and a dozen crops, predicting the noise left the last denoising
    # steps unlearnt (samples came out as static); v keeps both ends of the schedule learnable
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def _ema(unet, state: dict | None = None):
    """The exponential moving average of the weights (diffusers' EMAModel, warm-up on): what is sampled
    from; its state travels with each checkpoint so a resumed run averages as one that never stopped."""
    from diffusers.training_utils import EMAModel

    ema = EMAModel(unet.parameters(), decay=0.999, use_ema_warmup=True, power=0.75)
    if state is not None:
        ema.load_state_dict(state)
    return ema


def training_crops(coco: str | Path, images: str | Path | None, category: str, size: int,
                   eval_coco: str | Path | None = None, eval_ratio: float | None = None,
                   seed: int = 0) -> tuple[np.ndarray, dict]:
    """Context crops (N×S×S×4 uint8) of `category` on the training part, and where they came from."""
    dataset = load_coco(coco, images)
    ids = [c["id"] for c in dataset.categories if c["name"] == category]
    if not ids:
        raise DatasetError(f"{coco}: no category named {category!r} (has: "
                           f"{', '.join(c['name'] for c in dataset.categories)})")
    held_out = eval_image_ids(dataset, eval_coco, eval_ratio, seed, ways_out=(
        "pass --eval-coco FILE.json, or leave out --eval-ratio to train on every image")) \
        if (eval_coco or eval_ratio) else set()
    crops, files, ann_ids = [], [], []
    for image in sorted(dataset.images, key=lambda im: im["id"]):
        if image["id"] in held_out:
            continue
        anns = dataset.annotations_of(image["id"])
        if not any(a["category_id"] == ids[0] for a in anns):
            continue
        pixels = dataset.read_image(image).astype(np.float32)
        inst = dataset.instances(image)
        for ann, mask, approx, box in zip(anns, inst.masks, inst.attributes["approximate"], inst.boxes):
            if ann["category_id"] != ids[0] or ann.get("iscrowd", 0):
                continue
            crop = context_crop(pixels, instance_alpha(mask, bool(approx), box), size)
            if not crop[..., 3].any():  # thinner than a pixel at this size: keep its centre line
                crop[size // 2, size // 2, 3] = 1.0
            crop[..., 3] *= 255.0
            crops.append(np.clip(crop + 0.5, 0, 255).astype(np.uint8))
            files.append(image["file_name"])
            ann_ids.append(ann["id"])
    if len(crops) < 2:
        raise DatasetError(f"{coco}: class {category!r} has {len(crops)} instance(s) in the training part; "
                           "the learned source needs at least 2")
    origin = {"coco": str(coco), "category": category, "training_images": sorted(set(files)),
              "training_annotations": ann_ids, "eval_held_out": sorted(held_out)}
    return np.stack(crops), origin


def augment_batch(crops: np.ndarray, rng: np.random.Generator, batch: int) -> np.ndarray:
    """batch×4×S×S float32 in [-1, 1]: random crops flipped, turned by 90°, colour-jittered, rescaled."""
    size = crops.shape[1]
    out = np.empty((batch, 4, size, size), np.float32)
    for b in range(batch):
        crop = crops[int(rng.integers(len(crops)))].astype(np.float32)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        crop = np.rot90(crop, int(rng.integers(4)))
        zoom = float(rng.uniform(0.9, 1.1))
        if zoom != 1.0:
            matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, zoom)
            rgb = cv2.warpAffine(np.ascontiguousarray(crop[..., :3]), matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
            mask = cv2.warpAffine(np.ascontiguousarray(crop[..., 3]), matrix, (size, size), borderValue=0)
            crop = np.dstack([rgb, np.where(mask >= 127.5, 255.0, 0.0)]) if (mask >= 127.5).any() else crop
        # brightness, contrast and one offset for all channels: the crops' own colours are kept
        # (an offset per channel tinted greyscale nuclei purple and green)
        rgb = crop[..., :3] * float(rng.uniform(0.8, 1.2))
        mean = rgb.mean()
        rgb = (rgb - mean) * float(rng.uniform(0.8, 1.2)) + mean + float(rng.uniform(-10, 10))
        crop = np.dstack([np.clip(rgb, 0, 255), crop[..., 3]])
        out[b] = np.transpose(crop / 127.5 - 1.0, (2, 0, 1))
    return out


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("checkpoint-*") if (p / "state.json").is_file())


def train(coco: str | Path, images: str | Path | None, spec: TrainSpec, folder: Path,
          eval_coco: str | Path | None = None, eval_ratio: float | None = None,
          show_progress: bool = True) -> TrainResult:
    """Train (or resume from the last checkpoint in `folder`) and save the final model there."""
    import time

    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    spec.check()
    crops, origin = training_crops(coco, images, spec.category, spec.size, eval_coco, eval_ratio, spec.seed)
    device = _device()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_stages_in(folder)  # checkpoints or a final model a killed run was writing
    unet = build_unet(spec.size, spec.seed, spec.channels)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=spec.learning_rate)
    start_step = 0
    last = _checkpoints(folder)
    if last:
        state = json.loads((last[-1] / "state.json").read_text())
        if (state["category"], state["size"], state["seed"]) != (spec.category, spec.size, spec.seed):
            raise VisionSynthError(f"{last[-1]}: checkpoint of category {state['category']!r}, size {state['size']}, "
                                   f"seed {state['seed']}; use another --out or the same settings to resume")
        if state.get("objective") != OBJECTIVE or not (last[-1] / "ema.pt").is_file():
            raise VisionSynthError(f"{last[-1]}: checkpoint of an earlier version (noise prediction, no EMA); "
                                   "use another --out to train afresh")
        # the weights into the model built above, so that a resumed run's final model (config.json
        # included: from_pretrained would record the checkpoint's path in it) is that of one run
        from safetensors.torch import load_file

        unet.load_state_dict(load_file(last[-1] / "unet" / "diffusion_pytorch_model.safetensors"))
        optimizer = torch.optim.AdamW(unet.parameters(), lr=spec.learning_rate)
        optimizer.load_state_dict(torch.load(last[-1] / "optimizer.pt", map_location="cpu", weights_only=True))
        start_step = int(state["step"])
    ema = _ema(unet, torch.load(last[-1] / "ema.pt", map_location="cpu", weights_only=False) if last else None)
    unet.to(device).train()
    ema.to(device)
    scheduler = build_scheduler()
    alphas = scheduler.alphas_cumprod.to(device)
    scheduler.alphas_cumprod = alphas  # get_velocity reads it on the batch's device
    began = time.perf_counter()
    bar = tqdm(total=spec.steps, initial=min(start_step, spec.steps), desc=f"train {spec.category}", unit="step",
               disable=not show_progress)
    for step in range(start_step, spec.steps):
        rng = rng_for(spec.seed, step, 2)
        x0 = torch.from_numpy(augment_batch(crops, rng, spec.batch_size)).to(device)
        gen = torch_generator_for(spec.seed, step, 3)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.from_numpy(rng.integers(0, scheduler.config.num_train_timesteps, spec.batch_size)).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(unet(noisy, t).sample, scheduler.get_velocity(x0, noise, t))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.step(unet.parameters())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        done = step + 1
        if done % spec.checkpoint_every == 0 or done == spec.steps:
            _save_checkpoint(folder, unet, optimizer, ema, spec, done)
    bar.close()
    seconds = time.perf_counter() - began
    ema.copy_to(unet.parameters())  # the model kept is the average
    unet.to("cpu").eval()
    _save_model(folder, unet, scheduler, crops, origin, spec)
    return TrainResult(folder, spec.steps, start_step, len(crops), seconds, device)


def _save_checkpoint(folder: Path, unet, optimizer, ema, spec: TrainSpec, step: int) -> None:
    """MODEL/checkpoint-NNNNNN, built in a stage beside it (.checkpoint-NNNNNN.partial-PID-TOKEN) and
    renamed into place: a checkpoint folder exists only complete. Older ones beyond `keep_checkpoints`
    are removed by `remove_tree` (never left half-deleted under their name)."""
    import torch

    final = folder / f"checkpoint-{step:06d}"
    stage = stage_path(final)
    try:
        unet.save_pretrained(stage / "unet", safe_serialization=True)
        torch.save(optimizer.state_dict(), stage / "optimizer.pt")
        torch.save(ema.state_dict(), stage / "ema.pt")
        (stage / "state.json").write_text(json.dumps({"step": step, "category": spec.category, "size": spec.size,
                                                      "seed": spec.seed, "objective": OBJECTIVE}))
        remove_tree(final)
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for old in _checkpoints(folder)[: -spec.keep_checkpoints]:
        remove_tree(old)


FINAL_MODEL = ("unet", "scheduler", CROPS)  # with META, which is written last


def _save_model(folder: Path, unet, scheduler, crops: np.ndarray, origin: dict, spec: TrainSpec) -> None:
    """The final model (unet/, scheduler/, the crops, then rare_model.json), so that the folder never
    holds half of one: built in a stage inside the folder, the old META removed first (until the new
    one is in place the folder is no model, and `train` run again saves it again), each part renamed
    into place, META last."""
    stage = stage_path(folder / "model")
    try:
        unet.save_pretrained(stage / "unet", safe_serialization=True)
        scheduler.save_pretrained(stage / "scheduler")
        np.savez_compressed(stage / CROPS, crops=crops)
        meta = {**origin, "size": spec.size, "steps": spec.steps, "seed": spec.seed, "batch_size": spec.batch_size,
                "learning_rate": spec.learning_rate, "channels": list(spec.channels), "grey": is_grey(crops)}
        (stage / META).write_text(json.dumps(meta, indent=2))
        (folder / META).unlink(missing_ok=True)
        for name in FINAL_MODEL:
            remove_tree(folder / name)
            os.replace(stage / name, folder / name)
        os.replace(stage / META, folder / META)  # a model folder from this moment
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def load_model(folder: str | Path, where: str = "model") -> LearnedModel:
    from diffusers import DDPMScheduler, UNet2DModel

    folder = Path(folder)
    if not (folder / META).is_file() or not (folder / "unet").is_dir():
        raise VisionSynthError(f"{where}: {folder} is not a model folder written by `vision-synth defects train` "
                               f"(no {META} or unet/)")
    meta = json.loads((folder / META).read_text())
    unet = UNet2DModel.from_pretrained(folder / "unet").eval()
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    with np.load(folder / CROPS) as data:
        crops = data["crops"]
    return LearnedModel(folder, unet, scheduler, meta, crops)


def check_training_images(model: LearnedModel, eval_files: set[str], where: str) -> None:
    """Refuse a model trained on an image of the eval split."""
    leaked = sorted(set(model.meta.get("training_images", [])) & eval_files)
    if leaked:
        raise VisionSynthError(f"{where}: {model.folder} was trained on {len(leaked)} image(s) of the eval split "
                               f"(e.g. {leaked[0]}); retrain with --eval-ratio/--eval-coco matching the policy")


def sample_crops(model: LearnedModel, num: int, seed: int = 0, steps: int = 50, batch: int = 16,
                 show_progress: bool = False) -> np.ndarray:
    """num×S×S×4 uint8 crops (mask channel 0/255); crop i's noise comes from (seed, i)."""
    import torch
    from diffusers import DDIMScheduler
    from tqdm import tqdm

    device = _device()
    unet = model.unet.to(device)
    size = int(model.meta["size"])
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    out = np.empty((num, size, size, 4), np.uint8)
    for start in tqdm(range(0, num, batch), desc="sample", unit="batch", disable=not show_progress):
        n = min(batch, num - start)
        x = torch.cat([torch.randn((1, 4, size, size), generator=torch_generator_for(seed, start + k, 7))
                       for k in range(n)]).to(device)
        scheduler.set_timesteps(steps)
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        arr = x.clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy()
        rgb = (arr[..., :3] + 1) * 127.5
        if model.meta.get("grey", is_grey(model.training_crops)):  # greyscale data give greyscale crops
            rgb = np.repeat(rgb.mean(axis=-1, keepdims=True), 3, axis=-1)
        out[start : start + n, ..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        for k in range(n):  # the mask channel smoothed before it is cut at 0: no pixel-wide ragged edge
            soft = cv2.GaussianBlur(np.ascontiguousarray(arr[k, ..., 3]), (0, 0), MASK_SIGMA)
            out[start + k, ..., 3] = smooth_mask(soft > 0).astype(np.uint8) * 255
    return out


def is_grey(crops: np.ndarray) -> bool:
    """Whether every crop's R, G and B are equal (fluorescence, X-ray, most inspection cameras)."""
    return bool((crops[..., 0] == crops[..., 1]).all() and (crops[..., 1] == crops[..., 2]).all())


def smooth_mask(mask: np.ndarray) -> np.ndarray:
    """A sampled mask as clean as a drawn one: speckles opened away, gaps closed, holes filled, and
    only the connected part nearest the crop's centre kept (the crops are centred on one instance)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    count, labels = cv2.connectedComponents(m, connectivity=8)
    if count <= 1:
        return m > 0
    h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w]
    centre = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2
    nearest = min(range(1, count), key=lambda c: (float(centre[labels == c].min()), -int((labels == c).sum())))
    part = (labels == nearest).astype(np.uint8)
    contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(part)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled > 0


def crop_features(crops: np.ndarray) -> np.ndarray:
    """N×(16·16·4) features for DCR: crops resized to 16×16, RGB and mask in [0, 1]."""
    small = [cv2.resize(c.astype(np.float32) / 255.0, (FEATURE_SIZE, FEATURE_SIZE), interpolation=cv2.INTER_AREA)
             for c in crops]
    return np.stack(small).reshape(len(crops), -1)


def memorisation_filter(crops: np.ndarray, training: np.ndarray, close_quantile: float = 0.05):
    """(keep mask, DCRResult): a crop is rejected when nearer its closest training crop than the
    `close_quantile` quantile of the training crops' own nearest-neighbour distances."""
    from vision_synth.quality.memorisation import dcr

    result = dcr(crop_features(crops), crop_features(training), close_quantile=close_quantile)
    return ~result.close, result


def crop_quality(samples: np.ndarray, training: np.ndarray, dcr_result=None) -> dict[str, Any]:
    """How the sampled crops compare with the real training crops (both N×S×S×4 uint8):
    fidelity as k-NN precision (share of samples inside the real crops' manifold) and diversity as
    recall (share of real crops covered by the samples) and as the ratio of median pairwise
    distances (samples / real: 1 = as varied as the real crops, near 0 = one crop drawn again and
    again); plus the looks a user can check by eye: intensity inside the mask and mask solidity
    (area / convex-hull area: ragged masks score low)."""
    from scipy.spatial.distance import pdist

    from vision_synth.quality.fidelity import precision_recall

    fs, ft = crop_features(samples), crop_features(training)
    k = max(1, min(3, len(ft) - 1, len(fs) - 1))
    precision, recall = precision_recall(ft, fs, k=k) if len(fs) > 1 and len(ft) > 1 else (float("nan"),) * 2
    spread = lambda f: float(np.median(pdist(f))) if len(f) > 1 else float("nan")  # noqa: E731

    def looks(crops: np.ndarray) -> dict[str, float]:
        inside = [c[..., :3].mean(axis=-1)[c[..., 3] > 0] for c in crops if (c[..., 3] > 0).any()]
        return {"intensity_mean": float(np.mean([v.mean() for v in inside])) if inside else float("nan"),
                "intensity_std": float(np.mean([v.std() for v in inside])) if inside else float("nan"),
                "mask_solidity": float(np.mean([_solidity(c[..., 3] > 0) for c in crops if (c[..., 3] > 0).any()]
                                               or [float("nan")]))}

    report = {"samples": int(len(samples)), "training_crops": int(len(training)), "k": k,
              "precision": precision, "recall": recall,
              "diversity_ratio": spread(fs) / spread(ft) if spread(ft) > 0 else float("nan"),
              "learned": looks(samples), "real": looks(training)}
    if dcr_result is not None:
        report["dcr"] = dcr_result.to_json()
    return report


def _solidity(mask: np.ndarray) -> float:
    """Mask pixels / pixels of their filled convex hull (1 = convex; ragged or holed masks score less)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(np.concatenate(contours))], 1)
    return float(mask.sum() / max(int(hull.sum()), 1))


@dataclass(frozen=True)
class LearnedSamples:
    cutouts: list[Cutout]  # the accepted crops (pixels inside the mask)
    rejected: int  # crops rejected by DCR
    report: dict[str, Any]  # crop_quality of the accepted crops, with the DCR figures


def sample_cutouts(model: LearnedModel, num: int, seed: int = 0, steps: int = 50,
                   dcr_quantile: float = 0.05) -> LearnedSamples:
    """Sampled crops that pass the memorisation check, as Cutouts (pixels inside the mask), with
    their fidelity and diversity figures. Crops with an empty mask are dropped too."""
    crops = sample_crops(model, num, seed, steps)
    passed, result = memorisation_filter(crops, model.training_crops, dcr_quantile)
    keep = passed & (crops[..., 3].reshape(num, -1).max(axis=1) > 0)
    cutouts = [trim_cutout(crops[i, ..., :3].astype(np.float32), (crops[i, ..., 3] > 0).astype(np.float32),
                           f"{model.folder} sample {i}") for i in np.flatnonzero(keep)]
    report = crop_quality(crops[keep], model.training_crops, result)
    return LearnedSamples(cutouts, int((~passed).sum()), report)


def write_samples(model: LearnedModel, num: int, out: Path, seed: int = 0, steps: int = 50,
                  dcr_quantile: float = 0.05, overwrite: bool = False, show_progress: bool = False) -> str:
    """Write accepted crops as RGBA PNGs (alpha = mask) and samples.json with the DCR figures into the
    new folder `out` (built aside and renamed into place whole; `overwrite` replaces an existing one)."""
    check_new_output(out, overwrite)
    crops = sample_crops(model, num, seed, steps, show_progress=show_progress)
    keep, result = memorisation_filter(crops, model.training_crops, dcr_quantile)
    empty = crops[..., 3].reshape(num, -1).max(axis=1) == 0
    written = []
    with staged_output(out, replace=overwrite) as stage:
        for i in range(num):
            if keep[i] and not empty[i]:
                name = f"crop_{i:05d}.png"
                write_image(stage / name, crops[i], "png", png_compression=None)
                written.append(name)
        report = {"model": str(model.folder), "seed": seed, "steps": steps, "requested": num, "written": written,
                  "rejected_dcr": [int(i) for i in np.flatnonzero(~keep)],
                  "empty_mask": [int(i) for i in np.flatnonzero(empty & keep)],
                  "quality": crop_quality(crops[keep & ~empty], model.training_crops, result)}
        write_json(stage / "samples.json", report, indent=2)
    return (f"{out}: {len(written)} of {num} crops written ({int((~keep).sum())} rejected by DCR, "
            f"{int((empty & keep).sum())} with an empty mask)")
