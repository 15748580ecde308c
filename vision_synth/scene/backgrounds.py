"""Backgrounds: seeded procedural textures, or real images from a folder or glob (random crop, resize)."""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vision_synth.errors import DatasetError
from vision_synth.imageio import IMAGE_SUFFIXES, read_image
from vision_synth.scene.texture_bank import TextureBank
from vision_synth.scene.textures import make_texture
from vision_synth.spec import uniform


class TextureBackgrounds:
    """Procedural textures for H×W images of run `seed`: from the texture bank (built here, once), or
    each drawn anew when the spec says `bank: false`."""

    def __init__(self, spec, seed: int, height: int, width: int) -> None:
        self.textures = list(spec.textures)
        self.bank = TextureBank(seed, self.textures, height, width) if spec.bank else None

    def draw(self, rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        name = self.textures[int(rng.integers(len(self.textures)))]
        if self.bank is None:
            return make_texture(name, rng, height, width), None, f"texture:{name}"
        if (height, width) != (self.bank.height, self.bank.width):
            raise ValueError(f"the texture bank was built for {self.bank.height}×{self.bank.width} images, "
                             f"not {height}×{width}")
        return self.bank.draw(name, rng)[0], None, f"texture:{name}"


def find_images(pattern: Path) -> list[Path]:
    """Image files of a folder, or matching a glob, sorted so the choice by index is reproducible."""
    if pattern.is_dir():
        files = [p for p in pattern.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files)


class ImageBackgrounds:
    """Real images; each draw picks one, crops a random window of the target aspect, resizes it."""

    def __init__(self, spec, resolve, show_progress: bool = True) -> None:
        self.files = find_images(resolve(spec.images))
        if not self.files:
            raise DatasetError(f"{resolve(spec.images)}: no background images found")
        self.regions_dir = resolve(spec.regions) if spec.regions else None
        self.region_files = None if self.regions_dir is None else _files_by_stem(self.regions_dir)
        # each file decoded once now, as draw() will: a file whose header reads but whose pixels do
        # not (a truncated JPEG) fails before anything is written, not at the image that draws it
        for path in tqdm(self.files, desc="checking backgrounds", unit="img", leave=False,
                         disable=not show_progress or len(self.files) < 200):
            shape = read_image(path).shape[:2]
            if self.regions_dir is not None:
                self._region(path, shape)
        self.crop = spec.crop
        self.flip = spec.flip

    def _region(self, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
        """The region mask of `image_path` (H×W uint8), which must be `shape`."""
        path = self._region_file(image_path)
        region = read_image(path, "L")
        if region.shape != shape:
            raise DatasetError(f"{path}: region mask size differs from {image_path}")
        return region

    def _region_file(self, image_path: Path) -> Path:
        match = self.region_files.get(image_path.stem)
        if match is None:
            raise DatasetError(f"{self.regions_dir}: no region mask named {image_path.stem}.* for {image_path}")
        return match

    def draw(self, rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        path = self.files[int(rng.integers(len(self.files)))]
        pixels = read_image(path)
        region = self._region(path, pixels.shape[:2]) if self.regions_dir is not None else None
        ih, iw = pixels.shape[:2]
        # largest window of the target aspect that fits, times the crop fraction
        scale = min(ih / height, iw / width) * uniform(rng, self.crop)
        ch, cw = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        y = int(rng.integers(0, ih - ch + 1))
        x = int(rng.integers(0, iw - cw + 1))
        flip = self.flip and rng.random() < 0.5
        interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
        image = cv2.resize(pixels[y : y + ch, x : x + cw], (width, height), interpolation=interp)
        if region is not None:
            region = cv2.resize(region[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_NEAREST) > 127
        if flip:
            image = image[:, ::-1]
            region = None if region is None else region[:, ::-1]
        return np.ascontiguousarray(image), region, f"image:{path.name}"


def _files_by_stem(folder: Path) -> dict[str, Path]:
    """The files of `folder` by name without suffix (the first in name order where several share
    one), listed once: a folder of thousands of masks is not searched again for every image."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: region mask folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(".") and path.is_file():
            files.setdefault(path.stem, path)
    return files


def make_backgrounds(spec, resolve, seed: int, height: int, width: int, show_progress: bool = True):
    """The backgrounds of H×W images of run `seed` (`show_progress`: a bar while a large folder of
    images is checked)."""
    if spec.kind == "texture":
        return TextureBackgrounds(spec, seed, height, width)
    return ImageBackgrounds(spec, resolve, show_progress)
