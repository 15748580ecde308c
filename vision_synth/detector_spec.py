"""What detector to train and for how long: a torch-free model, so configs can name a training
budget without importing torch (the training itself lives in vision_synth/detector.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MODELS = ("fcos_compact", "fcos_small", "ssdlite", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet", "fcos")
ModelName = Literal["fcos_compact", "fcos_small", "ssdlite", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet", "fcos"]


class TrainConfig(BaseModel):
    """What to train and for how long. Training sees crops of `crop_size` pixels at a random scale in
    `scale_jitter` (flipped and transposed when `flips`). `image_size` is the shorter side the
    torchvision models resize images to (the longer side is capped at 5/3 of it; ssdlite uses a
    square of this size), training crops and whole evaluation images alike, so give them crops
    as large as the images' shorter side for the two to share a scale; `fcos_compact` keeps images
    at their own scale. With a second training
    source (the utility check's synthetic data), `real_share` of every batch comes from the first."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: ModelName = "fcos_compact"
    steps: int = Field(200, ge=1)
    batch_size: int = Field(4, ge=1)
    crop_size: int = Field(192, ge=32)
    scale_jitter: tuple[float, float] = (0.8, 1.25)
    flips: bool = True  # horizontal and vertical flips and transposes while training
    real_share: float = Field(0.5, gt=0, lt=1)
    image_size: int = Field(320, ge=32)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(20, ge=0)
    seed: int = Field(0, ge=0)
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1" ...
    weights: Path | None = None  # a local state dict (or a file saved by save_detector); never downloaded

    @field_validator("scale_jitter")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError("expected two scales 0 < low <= high, e.g. [0.8, 1.25]")
        return value
