"""Train a torchvision detector on a COCO file and score it on another with pycocotools' COCOeval.

The one place detector training and evaluation live (the quality gate's train-on-synthetic,
test-on-real utility check builds on it). Nothing is downloaded: every model is built with
`weights=None, weights_backbone=None`, from scratch or from a local state dict.

Data: `torchvision.datasets.CocoDetection` wrapped by `wrap_dataset_for_transforms_v2` (boxes XYXY,
category ids as labels) and `torchvision.transforms.v2`. Category ids map to contiguous labels
1..K (0 is background for every model) and back by category name, so a detector trained on one
dataset is scored on another whose ids differ (synthetic vs real).
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

from vision_synth.coco.reader import load_coco
from vision_synth.detector_spec import MODELS, TrainConfig  # noqa: F401  (re-exported)
from vision_synth.errors import DatasetError, VisionSynthError

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
    """An untrained detector for `num_classes` labels including background 0; never downloads."""
    from torchvision.models import detection

    max_size = int(round(image_size * 5 / 3))
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


def coco_detection_dataset(annotations: str | Path, images: str | Path, train: bool, hflip: bool = True):
    """CocoDetection wrapped for transforms v2: (float image C×H×W in [0, 1], {image_id, boxes XYXY,
    labels = category ids, iscrowd}); images without annotations carry only image_id."""
    from torchvision import datasets
    from torchvision.transforms import v2

    steps = [v2.ToImage()]
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints while indexing
        dataset = datasets.CocoDetection(str(images), str(annotations), transforms=v2.Compose(steps))
    return datasets.wrap_dataset_for_transforms_v2(dataset, target_keys={"image_id", "boxes", "labels", "iscrowd"})


class _Collate:
    """Batches (images, targets) for torchvision detectors: category ids → labels, crowds dropped."""

    def __init__(self, label_of: dict[int, int]) -> None:
        self.label_of = label_of

    def __call__(self, batch):
        images, targets = [], []
        for image, target in batch:
            if "boxes" in target:
                boxes, cats = target["boxes"], target["labels"]
                crowd = torch.as_tensor(target["iscrowd"], dtype=torch.bool)
            else:  # an image without annotations
                boxes, cats = torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64)
                crowd = torch.zeros(0, dtype=torch.bool)
            keep = ~crowd
            labels = torch.tensor([self.label_of[int(c)] for c in cats[keep]], dtype=torch.int64)
            images.append(image)
            targets.append({"boxes": boxes[keep].as_subclass(torch.Tensor).float(), "labels": labels})
        return images, targets


def _schedule(config: TrainConfig):
    """Linear warm-up, then cosine decay to 5% of lr."""
    warmup = min(config.warmup_steps, max(config.steps // 5, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(config.steps - warmup, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _epoch_indices(n: int, total: int, generator: torch.Generator) -> list[int]:
    """`total` dataset indices: reshuffled epochs, cut where the steps end."""
    out: list[int] = []
    while len(out) < total:
        out += torch.randperm(n, generator=generator).tolist()
    return out[:total]


def train_detector(train_json: str | Path, train_images: str | Path, config: TrainConfig | None = None,
                   progress: bool = True, **overrides: Any) -> TrainedDetector:
    """Train `config.model` on a COCO file for `config.steps` steps; keyword overrides go into the
    config (`train_detector(a, b, steps=20)`). The same seed gives the same model on the CPU (CUDA
    kernels may add their own nondeterminism)."""
    from tqdm import tqdm

    config = TrainConfig.model_validate({**(config or TrainConfig()).model_dump(), **overrides})
    gt = load_coco(train_json, train_images)
    if not gt.annotations:
        raise DatasetError(f"{train_json}: no annotations to train on")
    categories = [{"id": c["id"], "name": c["name"]} for c in sorted(gt.categories, key=lambda c: c["id"])]
    label_of = {c["id"]: k + 1 for k, c in enumerate(categories)}
    device = resolve_device(config.device)
    dataset = coco_detection_dataset(train_json, train_images, train=True, hflip=config.hflip)
    # seeded initialisation and flips; the global generators (CPU and every GPU) are restored after
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(config.seed)
        model = build_model(config.model, len(categories) + 1, config.image_size)
        loaded = load_weights(model, config.weights) if config.weights is not None else 0
        model.to(device).train()
        generator = torch.Generator().manual_seed(config.seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, collate_fn=_Collate(label_of), num_workers=config.num_workers,
            sampler=_epoch_indices(len(dataset), config.steps * config.batch_size, generator), generator=generator)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
        losses = []
        start = time.perf_counter()
        bar = tqdm(total=config.steps, desc=f"train {config.model}", unit="step", disable=not progress)
        for step, (images, targets) in enumerate(loader):
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


@torch.inference_mode()
def predict(detector: TrainedDetector, dataset, batch_size: int = 8, progress: bool = False) -> list[dict[str, Any]]:
    """COCO result records ({image_id, category_id by the dataset's names, bbox xywh, score}) of the
    detector on a dataset from `coco_detection_dataset`; classes the dataset lacks are dropped."""
    from tqdm import tqdm

    id_of_name = {c["name"]: c["id"] for c in dataset.coco.dataset["categories"]}
    to_category = {k + 1: id_of_name.get(c["name"]) for k, c in enumerate(detector.categories)}
    model, device = detector.model.eval(), detector.device
    results = []
    indices = list(range(len(dataset)))
    for first in tqdm(range(0, len(indices), batch_size), desc="evaluate", unit="batch", disable=not progress):
        batch = [dataset[i] for i in indices[first : first + batch_size]]
        outputs = model([image.to(device) for image, _ in batch])
        for (_, target), out in zip(batch, outputs):
            boxes = out["boxes"].cpu().numpy().astype(float)
            for (x0, y0, x1, y1), label, score in zip(boxes, out["labels"].tolist(), out["scores"].tolist()):
                category = to_category.get(label)
                if category is not None:
                    results.append({"image_id": int(target["image_id"]), "category_id": category,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results


def evaluate_detector(detector: TrainedDetector, val_json: str | Path, val_images: str | Path, batch_size: int = 8,
                      progress: bool = False) -> DetectionMetrics:
    """COCOeval (bbox) of the detector on a COCO file; categories are matched by name."""
    from pycocotools.cocoeval import COCOeval

    gt_data = load_coco(val_json, val_images)
    evaluated = [a for a in gt_data.annotations if not a.get("iscrowd", 0)]
    if not evaluated:
        raise DatasetError(f"{val_json}: no annotations to evaluate against")
    trained = {c["name"] for c in detector.categories}
    if not trained & {c["name"] for c in gt_data.categories}:
        raise DatasetError(f"{val_json}: no category name in common with the trained detector "
                           f"({', '.join(sorted(trained))})")
    dataset = coco_detection_dataset(val_json, val_images, train=False)
    results = predict(detector, dataset, batch_size, progress)
    gt = dataset.coco
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    with_gt = sorted({a["category_id"] for a in evaluated})
    if not results:  # COCO.loadRes cannot take an empty list; nothing detected scores 0
        return DetectionMetrics(0.0, 0.0, {names[c]: 0.0 for c in with_gt}, len(dataset), len(evaluated), 0)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval reports on stdout
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # IoU × recall × class × area × max dets
    per_class = {}
    for k, cat_id in enumerate(evaluation.params.catIds):
        p = precision[:, :, k, 0, -1]
        if cat_id in with_gt:
            per_class[names[cat_id]] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    stats = evaluation.stats
    return DetectionMetrics(float(max(stats[0], 0.0)), float(max(stats[1], 0.0)), per_class, len(dataset),
                            len(evaluated), len(results))


def save_detector(detector: TrainedDetector, path: str | Path) -> None:
    """Write the weights with the categories and config, loadable by load_detector or as --weights."""
    from vision_synth.coco.writer import write_atomic

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
