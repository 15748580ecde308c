"""What detector to train and for how long: a torch-free model, so configs can name a training
budget without importing torch (the training itself lives in vision_synth/detector.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MODELS = ("fcos_small", "ssdlite", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet", "fcos")
ModelName = Literal["fcos_small", "ssdlite", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet", "fcos"]


class TrainConfig(BaseModel):
    """What to train and for how long. `image_size` is the shorter side the model resizes images to
    (the longer side is capped at 5/3 of it; ssdlite uses a square of this size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName = "fcos_small"
    steps: int = Field(300, ge=1)
    batch_size: int = Field(4, ge=1)
    image_size: int = Field(320, ge=32)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(50, ge=0)
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1" ...
    weights: Path | None = None  # a local state dict (or a file saved by save_detector); never downloaded
    hflip: bool = True  # random horizontal flips while training
    num_workers: int = Field(0, ge=0)
