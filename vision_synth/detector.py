"""Train a torchvision detector on a COCO file and score it on another with pycocotools' COCOeval.

The one place detector training and evaluation live (the quality gate's train-on-synthetic,
test-on-real utility check builds on it). Nothing is downloaded: every model is built with
`weights=None, weights_backbone=None`, from scratch or from a local state dict.

Data: crops of `crop_size` pixels at a random scale (`scale_jitter`), flipped and transposed
(albumentations, boxes carried with the crop), drawn from seeded per-slot streams (`_Batches`);
a second source can fill a fixed share of every batch (the utility check's real+synthetic arm).
Categories map to contiguous labels 1..K (0 is background for every model) and back by name, so
a detector trained on one dataset is scored on another whose ids differ (synthetic vs real).
The default model, `fcos_compact`, is made for few-shot data on a CPU (see `_fcos_compact`).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import numpy as np

from vision_synth.coco.reader import CocoDataset, load_coco
from vision_synth.detector_spec import MODELS, TrainConfig  # noqa: F401  (re-exported)
from vision_synth.errors import DatasetError, VisionSynthError
from vision_synth.seeding import rng_for, torch_seed_for

@dataclass
class TrainedDetector:
    """A trained model and the categories its labels stand for: label k+1 is `categories[k]`."""

    model: nn.Module
    categories: list[dict[str, Any]]
    config: TrainConfig
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    weights_loaded: int = 0  # tensors taken from config.weights

    @property
    def steps_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else 0.0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass(frozen=True)
class DetectionMetrics:
    """COCOeval box metrics: AP (IoU .50:.95), AP50, and AP per class name (classes with ground truth
    in the evaluation set only)."""

    ap: float
    ap50: float
    per_class: dict[str, float]
    images: int
    instances: int
    detections: int

    def lines(self) -> list[str]:
        out = [f"AP {self.ap:.4f}  AP50 {self.ap50:.4f}  ({self.images} images, {self.instances} instances, "
               f"{self.detections} detections)"]
        width = max((len(name) for name in self.per_class), default=0)
        out += [f"  {name:<{width}}  AP {ap:.4f}" for name, ap in self.per_class.items()]
        return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise VisionSynthError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise VisionSynthError(f"--device {device}: CUDA is not available here")
    return resolved


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    """An untrained detector for `num_classes` labels including background 0; never downloads.
    `fcos_compact` sees images at their own scale; the torchvision models resize the shorter side
    to `image_size`."""
    from torchvision.models import detection

    max_size = int(round(image_size * 5 / 3))
    if name == "fcos_compact":
        return _fcos_compact(num_classes)
    if name == "fcos_small":
        return _fcos_small(num_classes, image_size, max_size)
    if name == "fcos":
        return detection.fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                           min_size=image_size, max_size=max_size, score_thresh=0.05)
    if name == "retinanet":
        return detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                                min_size=image_size, max_size=max_size)
    if name == "fasterrcnn_mobilenet_v3_large_fpn":
        return detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                                           num_classes=num_classes, min_size=image_size,
                                                           max_size=max_size)
    if name == "ssdlite":
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        # the builder fixes 320×320; its anchors are relative, so only the resize changes
        model.transform = GeneralizedRCNNTransform(image_size, image_size, [0.5] * 3, [0.5] * 3,
                                                   size_divisible=1, fixed_size=(image_size, image_size))
        return model
    raise VisionSynthError(f"model {name!r}: choose one of {', '.join(MODELS)}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    groups = 8 if cout % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


class _CompactBackbone(nn.Module):
    """Four stride-2 stages of GroupNorm conv pairs and an FPN over strides 4, 8 and 16 (64 channels)."""

    widths = (32, 64, 96, 128)  # strides 2, 4, 8, 16
    out_channels = 64

    def __init__(self) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        stages, cin = [], 3
        for width in self.widths:
            stages.append(nn.Sequential(_conv(cin, width, 2), _conv(width, width)))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(list(self.widths[1:]), self.out_channels)

    def forward(self, x: torch.Tensor):
        from collections import OrderedDict

        levels = OrderedDict()
        for k, stage in enumerate(self.stages):
            x = stage(x)
            if k > 0:
                levels[str(k - 1)] = x
        return self.fpn(levels)


def _fcos_compact(num_classes: int) -> nn.Module:
    """About 0.75 M parameters, made to train from scratch on a few real images on a CPU: FCOS over
    strides 4/8/16 with size ranges set from them (below), images kept at their own scale (training
    crops come from `_Batches`), up to 300 detections an image for dense scenes."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class NativeScale(GeneralizedRCNNTransform):
        def resize(self, image, target=None):
            return image, target

    backbone = _CompactBackbone()
    # FCOS sizes each level's range by its anchor size s (distances 4s..8s from the point, the first
    # level from 0, the last unbounded) and samples centres within 1.5 s: s = 2 × stride gives
    # ranges 0–64, 64–128 and 128+ px and about 6×6 positive points for a 25 px nucleus on stride 4
    # (s = stride gave 3×3 and a median AP of 0.20 instead of 0.33 on nuclei_dev, 3 seeds)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((1.0,),) * 3)
    head = FCOSHead(backbone.out_channels, 1, num_classes, num_convs=2)
    # box distances through softplus: torchvision's ReLU on them can die for good from scratch (every
    # output negative, no gradient: the seed "collapses" to AP 0); after softplus its ReLU is a no-op
    head.regression_head.bbox_reg = nn.Sequential(head.regression_head.bbox_reg, nn.Softplus())
    model = FCOS(backbone, num_classes, anchor_generator=anchors, head=head, score_thresh=0.05,
                 detections_per_img=300, topk_candidates=1000)
    model.transform = NativeScale(1, 1, [0.5] * 3, [0.25] * 3, size_divisible=16)
    return model


def _fcos_small(num_classes: int, min_size: int, max_size: int) -> nn.Module:
    """FCOS on a ResNet-18 trunk with a 64-channel FPN (P3-P7) and a two-layer head: small enough to
    train from scratch on a CPU in minutes."""
    from torchvision.models import resnet18
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    channels = 64
    backbone = BackboneWithFPN(resnet18(weights=None), return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
                               in_channels_list=[128, 256, 512], out_channels=channels,
                               extra_blocks=LastLevelP6P7(channels, channels))
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5)
    head = FCOSHead(channels, anchors.num_anchors_per_location()[0], num_classes, num_convs=2)
    return FCOS(backbone, num_classes, min_size=min_size, max_size=max_size, anchor_generator=anchors, head=head,
                score_thresh=0.05)


def load_weights(model: nn.Module, path: Path) -> int:
    """Copy the tensors of a local state dict whose name and shape match into `model` (a head for
    another number of classes is left as initialised); returns how many were taken."""
    path = Path(path)
    if not path.is_file():
        raise VisionSynthError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a state dict
        raise VisionSynthError(f"{path}: not a torch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not matched:
        raise VisionSynthError(f"{path}: no tensor matches the model (wrong architecture?)")
    model.load_state_dict(matched, strict=False)
    return len(matched)


@dataclass(frozen=True)
class _Pool:
    """The training images of one source, their boxes (XYXY) and contiguous labels."""

    dataset: CocoDataset
    boxes: list[np.ndarray]
    labels: list[np.ndarray]

    @classmethod
    def of(cls, dataset: CocoDataset, label_of_name: dict[str, int]) -> _Pool:
        names = dataset.category_names
        boxes, labels = [], []
        for image in dataset.images:
            anns = [a for a in dataset.annotations_of(image["id"])
                    if not a.get("iscrowd", 0) and names[a["category_id"]] in label_of_name]
            xywh = np.array([dataset.box_of(a) for a in anns], np.float32).reshape(-1, 4)
            w, h = image["width"], image["height"]
            xyxy = np.clip(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), 0, [w, h, w, h])
            keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # what albumentations can carry
            boxes.append(xyxy[keep])
            labels.append(np.array([label_of_name[names[a["category_id"]]] for a in anns], np.int64)[keep])
        return cls(dataset, boxes, labels)

    def __len__(self) -> int:
        return len(self.dataset.images)


class _Batches:
    """Seeded training batches of crops: slot k of step t draws its image and its augmentation from
    `rng_for(seed, t, stream, k)` alone, so the real slots of a batch are the same whichever other
    source fills the rest (the paired arms of the utility check). The first `real_slots` slots of
    each batch come from the real pool, the others from the extra pool."""

    def __init__(self, config: TrainConfig, real: _Pool, extra: _Pool | None) -> None:
        from vision_synth.augment.albu import TrainingCrops

        self.config, self.real, self.extra = config, real, extra
        self.transform = TrainingCrops(config.crop_size, config.scale_jitter, config.flips)
        share = config.real_share
        self.real_slots = (config.batch_size if extra is None
                           else min(max(int(round(share * config.batch_size)), 1), config.batch_size - 1))
        self._pixels: dict[tuple[int, int], np.ndarray] = {}

    def _image(self, pool: _Pool, source: int, index: int) -> np.ndarray:
        key = (source, index)
        if key not in self._pixels:
            if len(self._pixels) > 512:
                self._pixels.clear()
            self._pixels[key] = pool.dataset.read_image(pool.dataset.images[index])
        return self._pixels[key]

    def _slot(self, step: int, slot: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        source = 0 if slot < self.real_slots else 1
        pool = self.real if source == 0 else self.extra
        rng = rng_for(self.config.seed, step, _STREAMS[source], slot)
        index = int(rng.integers(len(pool)))
        pixels, boxes, labels = self.transform(self._image(pool, source, index), pool.boxes[index],
                                               pool.labels[index], rng)
        image = _tensor(pixels)
        target = {"boxes": torch.as_tensor(boxes), "labels": torch.as_tensor(labels)}
        return image, target

    def __call__(self, step: int):
        slots = [self._slot(step, k) for k in range(self.config.batch_size)]
        return [s[0] for s in slots], [s[1] for s in slots]


_STREAMS = (0x7EA1, 0x5E7E)  # real, extra: the purpose of each stream of training draws


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float in [0, 1] (a copy: decoded images may be read-only)."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float().div_(255)


def _schedule(config: TrainConfig):
    """Linear warm-up, then cosine decay to 5% of lr."""
    warmup = min(config.warmup_steps, max(config.steps // 5, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(config.steps - warmup, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _categories(dataset: CocoDataset) -> list[dict[str, Any]]:
    """The categories a detector learns, in id order, one per name."""
    seen: dict[str, dict[str, Any]] = {}
    for c in sorted(dataset.categories, key=lambda c: c["id"]):
        seen.setdefault(c["name"], {"id": c["id"], "name": c["name"]})
    return list(seen.values())


def train_detector(train_json: str | Path, train_images: str | Path, config: TrainConfig | None = None,
                   progress: bool = True, extra: tuple[str | Path, str | Path] | None = None,
                   **overrides: Any) -> TrainedDetector:
    """Train `config.model` for `config.steps` steps on crops of a COCO dataset; keyword overrides go
    into the config (`train_detector(a, b, steps=20)`). With `extra` (annotations, images), a share
    `config.real_share` of every batch still comes from the first dataset and the rest from `extra`
    (its classes matched by name; classes the first lacks are ignored). The same seed gives the same
    model on the CPU (CUDA kernels may add their own nondeterminism)."""
    from tqdm import tqdm

    config = TrainConfig.model_validate({**(config or TrainConfig()).model_dump(), **overrides})
    gt = load_coco(train_json, train_images)
    if not gt.annotations:
        raise DatasetError(f"{train_json}: no annotations to train on")
    categories = _categories(gt)
    label_of_name = {c["name"]: k + 1 for k, c in enumerate(categories)}
    real = _Pool.of(gt, label_of_name)
    extra_pool = _Pool.of(load_coco(*extra), label_of_name) if extra is not None else None
    if extra_pool is not None and not len(extra_pool):
        raise DatasetError(f"{extra[0]}: no images to train on")
    batches = _Batches(config, real, extra_pool)
    device = resolve_device(config.device)
    # seeded initialisation; the global generators (CPU and every GPU) are restored after
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(torch_seed_for(config.seed, 0, _INIT_STREAM))
        model = build_model(config.model, len(categories) + 1, config.image_size)
    loaded = load_weights(model, config.weights) if config.weights is not None else 0
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    losses = []
    start = time.perf_counter()
    bar = tqdm(total=config.steps, desc=f"train {config.model}", unit="step", disable=not progress)
    for step in range(config.steps):
        images, targets = batches(step)
        images = [im.to(device) for im in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        loss = sum(model(images, targets).values())
        if not torch.isfinite(loss):
            bar.close()
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainedDetector(model, categories, config, losses, seconds, loaded)


_INIT_STREAM = 0x1417


@torch.inference_mode()
def predict(detector: TrainedDetector, dataset: CocoDataset, batch_size: int = 8,
            progress: bool = False) -> list[dict[str, Any]]:
    """COCO result records ({image_id, category_id by the dataset's names, bbox xywh, score}) of the
    detector on every image of a dataset; classes the dataset lacks are dropped."""
    from tqdm import tqdm

    id_of_name = {c["name"]: c["id"] for c in dataset.categories}
    to_category = {k + 1: id_of_name.get(c["name"]) for k, c in enumerate(detector.categories)}
    model, device = detector.model.eval(), detector.device
    results = []
    images = dataset.images
    for first in tqdm(range(0, len(images), batch_size), desc="evaluate", unit="batch", disable=not progress):
        batch = images[first : first + batch_size]
        pixels = [_tensor(dataset.read_image(im)).to(device) for im in batch]
        for image, out in zip(batch, model(pixels)):
            boxes = out["boxes"].cpu().numpy().astype(float)
            for (x0, y0, x1, y1), label, score in zip(boxes, out["labels"].tolist(), out["scores"].tolist()):
                category = to_category.get(label)
                if category is not None:
                    results.append({"image_id": int(image["id"]), "category_id": category,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results


MAX_DETECTIONS = (1, 10, 300)  # COCOeval's maxDets: AP is read at the last, raised from 100 for dense images


def evaluate_detector(detector: TrainedDetector, val_json: str | Path, val_images: str | Path, batch_size: int = 8,
                      progress: bool = False) -> DetectionMetrics:
    """COCOeval (bbox, up to 300 detections an image) of the detector on a COCO file; categories
    are matched by name."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_data = load_coco(val_json, val_images)
    evaluated = [a for a in gt_data.annotations if not a.get("iscrowd", 0)]
    if not evaluated:
        raise DatasetError(f"{val_json}: no annotations to evaluate against")
    trained = {c["name"] for c in detector.categories}
    if not trained & {c["name"] for c in gt_data.categories}:
        raise DatasetError(f"{val_json}: no category name in common with the trained detector "
                           f"({', '.join(sorted(trained))})")
    results = predict(detector, gt_data, batch_size, progress)
    names = gt_data.category_names
    with_gt = sorted({a["category_id"] for a in evaluated})
    if not results:  # COCO.loadRes cannot take an empty list; nothing detected scores 0
        return DetectionMetrics(0.0, 0.0, {names[c]: 0.0 for c in with_gt}, len(gt_data.images), len(evaluated), 0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports on stdout
        gt = COCO()
        gt.dataset = {"images": gt_data.images, "annotations": gt_data.annotations, "categories": gt_data.categories}
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.params.maxDets = list(MAX_DETECTIONS)
        evaluation.evaluate()
        evaluation.accumulate()
    # IoU × recall × class × area × max dets; read at the last maxDets (summarize() reads 100)
    precision = evaluation.eval["precision"][:, :, :, 0, -1]

    def mean(p: np.ndarray) -> float:
        return float(p[p > -1].mean()) if (p > -1).any() else 0.0

    per_class = {names[c]: mean(precision[:, :, k]) for k, c in enumerate(evaluation.params.catIds) if c in with_gt}
    known = [k for k, c in enumerate(evaluation.params.catIds) if c in with_gt]
    return DetectionMetrics(mean(precision[:, :, known]), mean(precision[:1, :, known]), per_class,
                            len(gt_data.images), len(evaluated), len(results))


def save_detector(detector: TrainedDetector, path: str | Path) -> None:
    """Write the weights with the categories and config, loadable by load_detector or as --weights."""
    from vision_synth.files import write_atomic

    buffer = io.BytesIO()
    torch.save({"model": detector.model.state_dict(), "categories": detector.categories,
                "config": detector.config.model_dump(mode="json")}, buffer)
    write_atomic(Path(path), buffer.getvalue())


def load_detector(path: str | Path, device: str = "auto") -> TrainedDetector:
    """A detector saved by save_detector, ready to evaluate."""
    path = Path(path)
    if not path.is_file():
        raise VisionSynthError(f"{path}: detector file not found")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"model", "categories", "config"} <= set(saved):
        raise VisionSynthError(f"{path}: not a file written by save_detector")
    config = TrainConfig.model_validate({**saved["config"], "weights": None})
    model = build_model(config.model, len(saved["categories"]) + 1, config.image_size)
    model.load_state_dict(saved["model"])
    model.to(resolve_device(device)).eval()
    return TrainedDetector(model, saved["categories"], config)
