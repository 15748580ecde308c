"""Core values: `Instances` (visible masks are the truth; boxes and areas are derived) and `Sample`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from vision_synth import masks as mask_ops

# Where an instance came from; written to COCO as `source`.
SOURCES = ("procedural", "copy-paste", "diffusion", "real")


@dataclass(frozen=True, eq=False)
class Instances:
    """N instances of one image as parallel arrays, filtered with indexing (`inst[keep]`).

    `masks` are the visible masks (after occlusion). Boxes and areas are never stored: they are
    derived from the masks whenever asked, so they cannot disagree. `attributes` holds per-instance
    arrays of length N (e.g. `occlusion`, `source`) that travel with the masks through filtering.
    """

    masks: np.ndarray
    category_ids: np.ndarray
    amodal_masks: np.ndarray | None = None
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be N×H×W, got shape {masks.shape}")
        masks = masks.astype(bool, copy=False)
        cats = np.asarray(self.category_ids, dtype=np.int64).reshape(-1)
        n = masks.shape[0]
        if cats.shape[0] != n:
            raise ValueError(f"{n} masks but {cats.shape[0]} category ids")
        amodal = self.amodal_masks
        if amodal is not None:
            amodal = np.asarray(amodal).astype(bool, copy=False)
            if amodal.shape != masks.shape:
                raise ValueError(f"amodal masks {amodal.shape} differ from masks {masks.shape}")
        attrs = {}
        for key, values in self.attributes.items():
            values = np.asarray(values)
            if values.shape[:1] != (n,):
                raise ValueError(f"attribute {key!r} has {values.shape[:1]} values for {n} instances")
            attrs[key] = values
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "category_ids", cats)
        object.__setattr__(self, "amodal_masks", amodal)
        object.__setattr__(self, "attributes", attrs)

    @classmethod
    def empty(cls, height: int, width: int) -> Instances:
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the masks."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def boxes(self) -> np.ndarray:
        """N×4 COCO boxes [x, y, w, h] in whole pixels: the extent of each visible mask."""
        return mask_ops.derive_boxes(self.masks)

    @property
    def areas(self) -> np.ndarray:
        """Visible pixel count of each instance."""
        return mask_ops.mask_areas(self.masks)

    def __getitem__(self, index: Any) -> Instances:
        """Select instances (boolean mask, index array or slice); every parallel array follows."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Instances(
            masks=self.masks[index],
            category_ids=self.category_ids[index],
            amodal_masks=None if self.amodal_masks is None else self.amodal_masks[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
        )

    def without_empty(self) -> Instances:
        return self[self.areas > 0]

    @staticmethod
    def concatenate(parts: list[Instances]) -> Instances:
        """Join instance lists of one image, in order (later ones are on top)."""
        parts = [p for p in parts]
        if not parts:
            raise ValueError("nothing to concatenate")
        keys = set(parts[0].attributes)
        if any(set(p.attributes) != keys for p in parts):
            raise ValueError("instances to join carry different attributes")
        with_amodal = all(p.amodal_masks is not None for p in parts)
        return Instances(
            masks=np.concatenate([p.masks for p in parts]),
            category_ids=np.concatenate([p.category_ids for p in parts]),
            amodal_masks=np.concatenate([p.amodal_masks for p in parts]) if with_amodal else None,
            attributes={k: np.concatenate([p.attributes[k] for p in parts]) for k in keys},
        )


@dataclass(frozen=True)
class Provenance:
    """How an image was made; written beside the COCO image record and into the dataset card."""

    generator: str
    synthetic: bool = True
    model: str | None = None
    model_hash: str | None = None
    prompt: str | None = None
    background: str | None = None
    stages: tuple[str, ...] = ()

    def with_stage(self, name: str) -> Provenance:
        return dataclasses.replace(self, stages=(*self.stages, name))


@dataclass(frozen=True, eq=False)
class Sample:
    """One generated image with its instances. Stages return new Samples; nothing mutates one."""

    index: int
    seed: int
    image: np.ndarray
    instances: Instances
    provenance: Provenance

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be H×W×3 uint8, got {image.shape} {image.dtype}")
        if len(self.instances) and self.instances.image_size != image.shape[:2]:
            raise ValueError(f"masks {self.instances.image_size} do not match image {image.shape[:2]}")

    def replace(self, **changes: Any) -> Sample:
        return dataclasses.replace(self, **changes)
