"""The texture bank: fields of each texture drawn once per process from (seed, texture), from which
every image takes its own window, dihedral transform, colour ramp and lighting.

Drawing a texture field costs 1–2 ms at 512×512; colouring a window of a ready one through three
lookup tables costs a fraction of that. The fields depend only on the run seed, the texture and the
image size (`rng_for_dataset(seed, "texture_bank", texture, field)`), so every process builds the
same bank and sample i still depends on (seed, i) alone; what an image takes from the bank is drawn
from its own generator. Windows are read at the field's own resolution: any resampling (a zoom)
would average away the one-pixel grain and streaks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from vision_synth import scene  # scene.kernels: imported on first use (see scene/__init__.py)
from vision_synth.scene.textures import PAINTED_LIGHT, TEXTURES, lighting, texture_field, texture_index, texture_ramp
from vision_synth.seeding import rng_for_dataset

FIELDS_PER_TEXTURE = 16
FIELD_SIDE = 1.5  # a field's side over the image's longer side
MAX_FIELD_BYTES = 64 << 20  # per texture: fewer fields for large images, never fewer than two
# gradient and vignette strength of each image's lighting; painted parts keep their own shading
LIGHT = {name: ((0.0, 0.1), (0.0, 0.1)) for name in TEXTURES} | {"painted": PAINTED_LIGHT}


@dataclass(frozen=True)
class BankCrop:
    """Where an image's texture comes from: field `field` of its texture, the window at (`y`, `x`)
    turned by `dihedral` (0–7: bit 2 transposes, bits 0–1 flip columns and rows)."""

    texture: str
    field: int
    y: int
    x: int
    dihedral: int


def fields_per_texture(height: int, width: int) -> int:
    side = field_side(height, width)
    return max(2, min(FIELDS_PER_TEXTURE, MAX_FIELD_BYTES // (side * side)))


def field_side(height: int, width: int) -> int:
    """Side of the square fields for H×W images (square: a transposed window must fit as well)."""
    return int(math.ceil(max(height, width) * FIELD_SIDE))


def bank_fields(seed: int, texture: str, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The bank's fields of `texture` for H×W images (read-only square uint8 arrays): a pure function
    of (seed, texture, image size)."""
    side = field_side(height, width)
    fields = []
    for k in range(fields_per_texture(height, width)):
        rng = rng_for_dataset(seed, "texture_bank", texture_index(texture), k)
        field = texture_field(texture, rng, (side, side), (height, width))
        np.clip(field, 0.0, 1.0, out=field)
        field = cv2.convertScaleAbs(field, alpha=255.0)  # rounded to the nearest level
        field.flags.writeable = False
        fields.append(field)
    return tuple(fields)


class TextureBank:
    """The fields of `textures` for H×W images of run `seed`, built once (per process)."""

    def __init__(self, seed: int, textures, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        self.fields = {name: bank_fields(seed, name, self.height, self.width) for name in dict.fromkeys(textures)}

    def crop(self, texture: str, rng: np.random.Generator) -> BankCrop:
        """The window and transform of one image, drawn from `rng`."""
        fields = self.fields[texture]
        k = int(rng.integers(len(fields)))
        dihedral = int(rng.integers(8))
        rows, cols = (self.width, self.height) if dihedral & 4 else (self.height, self.width)
        side = fields[k].shape[0]
        y, x = int(rng.integers(side - rows + 1)), int(rng.integers(side - cols + 1))
        return BankCrop(texture, k, y, x, dihedral)

    def field(self, crop: BankCrop) -> np.ndarray:
        """The H×W uint8 field of `crop` (a read-only view when it is not turned)."""
        transpose = bool(crop.dihedral & 4)
        rows, cols = (self.width, self.height) if transpose else (self.height, self.width)
        out = self.fields[crop.texture][crop.field][crop.y : crop.y + rows, crop.x : crop.x + cols]
        if transpose:
            out = cv2.transpose(out)
        flip = crop.dihedral & 3  # 1: columns, 2: rows, 3: both
        if flip:
            out = cv2.flip(out, (None, 1, 0, -1)[flip])
        return out

    def draw(self, texture: str, rng: np.random.Generator) -> tuple[np.ndarray, BankCrop]:
        """An H×W×3 uint8 RGB texture for one image, and where in the bank it comes from."""
        crop = self.crop(texture, rng)
        dark, light = texture_ramp(texture, rng)
        rows, cols = lighting(rng, self.height, self.width, *LIGHT[texture])
        # lighting scales the field (towards the ramp's dark end: exact shading for a ramp from black),
        # then the ramp per channel: |lo + (hi − lo)·v/255|, saturated (between lo and hi, so never negative).
        # The shading reads the rows in either order: only a turn that transposes or flips columns is copied.
        flip_rows = bool(crop.dihedral & 2)
        if crop.dihedral & 5:
            field, y, x = self.field(dataclasses.replace(crop, dihedral=crop.dihedral & 5)), 0, 0
        else:
            field, y, x = self.fields[crop.texture][crop.field], crop.y, crop.x  # the window, where it lies
        dark, light = dark.astype(np.float64), light.astype(np.float64)  # the slope in float64, as ever
        return scene.kernels.shade(field, y, x, flip_rows, rows, cols, dark, (light - dark) / 255.0), crop
