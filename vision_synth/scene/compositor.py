"""The procedural compositor: one Sample per index from a scene spec, all randomness from (seed, index)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from vision_synth.errors import DatasetError
from vision_synth.scene.backgrounds import make_backgrounds
from vision_synth.scene.defects import make_defect
from vision_synth.imageio import check_image, read_image
from vision_synth.scene.objects import load_coco_crops, load_sprite_folder, object_layer
from vision_synth.scene.placement import PlacementRules, Request, place_instances
from vision_synth.seeding import BACKGROUND_STREAM, rng_for
from vision_synth.spec import integer
from vision_synth.types import Instances, Provenance, Sample


@dataclass(frozen=True, eq=False)
class Layout:
    """One planned scene: the background, and the instances pasted on it (later ones on top).

    What a generator that paints its own pixels (diffusion) starts from: the compositor's plan for
    (seed, index), with the background as it was before anything was pasted."""

    index: int
    seed: int
    background: np.ndarray  # H×W×3 uint8, before anything was pasted
    composite: np.ndarray  # H×W×3 uint8, the compositor's image
    instances: Instances  # the visible masks and categories
    background_name: str | None


class Compositor:
    """Built once per process from a validated DatasetConfig (loads and checks every asset up front,
    so a bad file fails before anything is written, with a progress bar over a large background
    folder unless `show_progress` is off); `sample(i)` is a pure function of (seed, i)."""

    def __init__(self, config, show_progress: bool = True) -> None:
        self.config = config
        scene = config.scene
        self.height, self.width = config.image.height, config.image.width
        self.category_ids = config.category_ids
        self.backgrounds = make_backgrounds(scene.background, scene.resolve, config.seed, self.height, self.width,
                                            show_progress)
        self.cutouts = [self._load_cutouts(obj, scene) for obj in scene.objects]
        self.region = self._load_region(scene)
        p = scene.placement
        self.rules = PlacementRules(p.max_overlap, p.min_visible_area, p.min_visible_fraction, p.max_tries)
        self.provenance = Provenance(generator="procedural", model=f"scene:{scene.name or 'inline'}")

    @staticmethod
    def _load_cutouts(obj, scene):
        src = obj.source
        if src.kind == "sprites":
            return load_sprite_folder(scene.resolve(src.path))
        return load_coco_crops(scene.resolve(src.annotations), scene.resolve(src.images), src.category or obj.category)

    def _load_region(self, scene) -> np.ndarray | None:
        if scene.region is None:
            return None
        path = scene.resolve(scene.region)
        if not path.is_file():
            raise DatasetError(f"{path}: region mask not found")
        check_image(path)
        region = cv2.resize(read_image(path, "L"), (self.width, self.height), interpolation=cv2.INTER_NEAREST) > 127
        if not region.any():
            raise DatasetError(f"{path}: region mask is empty (white marks where defects may go)")
        return region

    batch_size = 1

    def samples(self, indices: list[int]) -> list[Sample]:
        """The generator protocol the runner uses (diffusion generators batch here)."""
        return [self.sample(i) for i in indices]

    def sample(self, index: int) -> Sample:
        image, instances, bg_name, _ = self._compose(index, keep_background=False)
        provenance = dataclasses.replace(self.provenance, background=bg_name)
        return Sample(index=index, seed=self.config.seed, image=image, instances=instances, provenance=provenance)

    def layout(self, index: int) -> Layout:
        """The plan of `index`: the same scene as `sample(index)`, with its clean background."""
        image, instances, bg_name, background = self._compose(index, keep_background=True)
        return Layout(index, self.config.seed, background, image, instances, bg_name)

    def _compose(self, index: int, keep_background: bool):
        """(image, instances, background name, background or None): every draw from rng_for(seed, index),
        the background's from a sub-stream of its own (so the instances do not depend on it)."""
        config, scene = self.config, self.config.scene
        rng = rng_for(config.seed, index)
        hw = (self.height, self.width)
        background, bg_region, bg_name = self.backgrounds.draw(rng_for(config.seed, index, BACKGROUND_STREAM), *hw)
        region = self.region if bg_region is None else (bg_region if self.region is None else bg_region & self.region)

        objects = []
        for obj, cutouts in zip(scene.objects, self.cutouts):
            for _ in range(integer(rng, obj.count)):
                layer = object_layer(cutouts, obj, scene.blending, rng, hw, self.category_ids[obj.category])
                objects.append(Request(layer))
        # z-order of objects is random; defects lie on top of the surface they mark
        objects = [objects[i] for i in rng.permutation(len(objects))]
        defects = []
        for spec in scene.defects:
            for _ in range(integer(rng, spec.count)):
                defects.append(Request(make_defect(spec, rng, hw, self.category_ids[spec.category]), region))

        image, instances, _ = place_instances(background, objects + defects, rng, self.rules, config.output.amodal,
                                              in_place=not keep_background)
        return image, instances, bg_name, (background if keep_background else None)
