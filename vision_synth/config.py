"""Dataset and scene configs: pydantic models, YAML loading, errors that name the file and key path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from vision_synth.augment.spec import AugmentSpec
from vision_synth.diffusion.spec import DiffusionSpec
from vision_synth.errors import ConfigError
from vision_synth.quality.spec import QualitySpec
from vision_synth.scene.defects import DefectSpec
from vision_synth.scene.textures import TEXTURES
from vision_synth.spec import (NAME_MAX, BlendSpec, ColorJitter, CountRange, FloatRange, ScaleRange, Spec, UnitRange,
                               long_name, read_yaml, validate_spec, with_key_paths)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TextureName = Literal[TEXTURES]  # type: ignore[valid-type]


# ----------------------------------------------------------------------------------------- scene
class TextureBackground(Spec):
    """Seeded procedural textures, one chosen uniformly per image."""

    kind: Literal["texture"] = "texture"
    textures: list[TextureName] = Field(default_factory=lambda: list(TEXTURES), min_length=1)
    bank: bool = Field(True, description="take each image's texture from a bank of fields drawn once per "
                                         "process from the seed (its own window, turn, zoom, colours and "
                                         "lighting); false draws every texture anew (slower)")


class ImageBackground(Spec):
    """Real images (e.g. photos of good parts) from a folder or glob, randomly cropped and resized."""

    kind: Literal["images"]
    images: str
    # folder of region masks with the same file stems (white = where defects may go)
    regions: str | None = None
    # side of the random square-ish crop as a fraction of the image's shorter side
    crop: UnitRange = (0.6, 1.0)
    flip: bool = True


Background = Annotated[Union[TextureBackground, ImageBackground], Field(discriminator="kind")]


class SpriteSource(Spec):
    """RGBA cutouts (PNG with alpha) from a folder."""

    kind: Literal["sprites"]
    path: str


class CocoSource(Spec):
    """Instance crops cut by mask from an existing COCO dataset."""

    kind: Literal["coco"]
    annotations: str
    images: str
    # category name in that dataset; defaults to the object's category
    category: str | None = None


ObjectSource = Annotated[Union[SpriteSource, CocoSource], Field(discriminator="kind")]


class ObjectSpec(Spec):
    category: str
    source: ObjectSource
    count: CountRange = (1, 3)
    # longest side of the pasted object as a fraction of the image's shorter side
    scale: ScaleRange = (0.15, 0.35)
    rotation: FloatRange = (0.0, 0.0)
    flip: bool = True
    color_jitter: ColorJitter = ColorJitter()
    blend: Literal["hard", "feather", "poisson"] | None = None


class PlacementSpec(Spec):
    """Overlap control: later instances lie on top and hide what is beneath them."""

    # most of a new instance's area that may lie over instances already placed
    max_overlap: float = Field(0.3, ge=0, le=1)
    # an instance left with fewer visible pixels, or a smaller visible fraction, is not kept;
    # placements that would leave an earlier instance partly visible below these are refused
    min_visible_area: int = Field(16, ge=1)
    min_visible_fraction: float = Field(0.25, ge=0, le=1)
    max_tries: int = Field(20, ge=1)


class SceneSpec(Spec):
    name: str | None = None
    description: str | None = None
    background: Background = TextureBackground()
    objects: list[ObjectSpec] = Field(default_factory=list)
    defects: list[DefectSpec] = Field(default_factory=list)
    placement: PlacementSpec = PlacementSpec()
    blending: BlendSpec = BlendSpec()
    # region mask image for defects (white = allowed), resized to the image
    region: str | None = None

    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _has_layers(self) -> SceneSpec:
        if not self.objects and not self.defects:
            raise ValueError("a scene needs at least one entry in objects or defects")
        return self

    @property
    def category_names(self) -> list[str]:
        """Categories named by the scene, in order of first appearance."""
        names = [o.category for o in self.objects] + [d.category for d in self.defects]
        return list(dict.fromkeys(names))

    def resolve(self, path: str) -> Path:
        """A path written in the scene, relative to the scene file."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p


# --------------------------------------------------------------------------------------- dataset
class CategorySpec(Spec):
    id: int = Field(ge=1, le=2**63 - 1)  # COCO ids are read into int64 arrays
    name: str = Field(min_length=1)
    supercategory: str = "none"


class ImageSpec(Spec):
    width: int = Field(ge=16, le=16384)
    height: int = Field(ge=16, le=16384)
    format: Literal["jpeg", "png"] = "jpeg"
    quality: int = Field(92, ge=1, le=100, description="JPEG quality")


class OutputSpec(Spec):
    segmentation: Literal["rle", "polygon"] = "rle"
    amodal: bool = Field(False, description="also write amodal masks (amodal_segmentation)")
    preview_images: int = Field(16, ge=0, le=256)


class DatasetConfig(Spec):
    name: str = Field(min_length=1)
    seed: int = Field(0, ge=0)
    num_images: int = Field(ge=1)
    image: ImageSpec
    categories: list[CategorySpec] | None = None
    generator: Literal["procedural", "diffusion"] = "procedural"
    scene: SceneSpec
    diffusion: DiffusionSpec | None = None
    output: OutputSpec = OutputSpec()
    augment: AugmentSpec | None = None
    quality: QualitySpec | None = None  # checks and gate after generating

    # the augmentation pipeline, loaded (and checked) with the config; hashed by content
    _pipeline: Any = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="config")  # the file it was read from (error messages name it)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:  # the default output is out/NAME
        if name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError("must be a plain folder name (it names the default output folder out/NAME)")
        if len(name.encode()) > NAME_MAX:
            raise ValueError(f"is {len(name.encode())} bytes, longer than a folder name may be ({NAME_MAX})")
        return name

    @model_validator(mode="after")
    def _categories_known(self) -> DatasetConfig:
        if self.categories is None:
            cats = [CategorySpec(id=i + 1, name=n) for i, n in enumerate(self.scene.category_names)]
            object.__setattr__(self, "categories", cats)
        ids = [c.id for c in self.categories]
        names = [c.name for c in self.categories]
        if len(set(ids)) != len(ids):
            raise ValueError(f"categories: duplicate id in {ids}")
        if len(set(names)) != len(names):
            raise ValueError(f"categories: duplicate name in {names}")
        return self

    @model_validator(mode="after")
    def _generator_has_its_section(self) -> DatasetConfig:
        if self.generator == "diffusion" and self.diffusion is None:
            raise ValueError("generator: diffusion needs a diffusion: section")
        if self.generator != "diffusion" and self.diffusion is not None:
            raise ValueError("diffusion: applies to generator: diffusion only")
        return self

    @property
    def source(self) -> str:
        """The config file this was read from, for messages about its keys."""
        return self._source

    @property
    def images_per_sample(self) -> int:
        """Output images per generated sample: 1, or the augmentation's copies (+ the original)."""
        return self.augment.slots if self.augment else 1

    @property
    def pipeline(self):
        """The loaded albumentations pipeline of `augment:` (None without one)."""
        return self._pipeline

    @property
    def category_ids(self) -> dict[str, int]:
        return {c.name: c.id for c in self.categories}

    def config_hash(self) -> str:
        """sha256 of the config as validated (scene inlined, paths as written), num_images and the
        quality checks aside: samples depend on everything else."""
        data = self.model_dump(mode="json", exclude={"num_images", "quality"})
        if self._pipeline is not None:  # a pipeline file: hash what it says, not its path
            data["augment"]["pipeline"] = self._pipeline.to_dict()
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------------------- loading
def find_scene(name: str, config_dir: Path) -> Path:
    """A scene given by name ('surface_defects': a folder under scenes/) or path ('../scenes/x/scene.yaml')."""
    if name.endswith((".yaml", ".yml")):
        p = Path(name).expanduser()
        return p if p.is_absolute() else config_dir / p
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"scene {name!r}: a scene name is the name of a folder under scenes/ "
                          "(or give the path of its .yaml file)")
    if len(name.encode()) > NAME_MAX:
        raise ConfigError(f"scene {name[:24] + '…'!r}: the name is {len(name.encode())} bytes, longer than a "
                          f"file name may be ({NAME_MAX})")
    for root in (Path.cwd(), config_dir.parent, PACKAGE_ROOT):
        candidate = root / "scenes" / name / "scene.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"scene {name!r}: no scenes/{name}/scene.yaml (looked in {Path.cwd()}, {config_dir.parent}, {PACKAGE_ROOT})")


def _scene_paths(scene: SceneSpec) -> list[tuple[str, str]]:
    """(key path, path as written) of every file or folder a scene names."""
    paths = [("region", scene.region)]
    if isinstance(scene.background, ImageBackground):
        paths += [("background.images", scene.background.images), ("background.regions", scene.background.regions)]
    for i, obj in enumerate(scene.objects):
        for key in ("path", "annotations", "images"):
            paths.append((f"objects[{i}].source.{key}", getattr(obj.source, key, None)))
    return [(key, value) for key, value in paths if value is not None]


def check_inside(source: Path | str, key: str, value: str, base: Path, root: Path) -> None:
    """Refuse a relative path (as written at `key` of the file `source`) that, joined to `base`, leaves
    `root`, and one with a name longer than a file system allows. An absolute path (or ~) is the user's
    own choice and is kept; symlinks inside `root` are followed as usual (the check is on the text)."""
    p = Path(value).expanduser()
    long = long_name(value)
    if long is not None:
        raise ConfigError(f"{source}: {key}: the name {long[:24] + '…'!r} is {len(long.encode())} bytes, longer than "
                          f"a file name may be ({NAME_MAX})")
    if not p.is_absolute() and not Path(os.path.normpath(base / p)).is_relative_to(root):
        raise ConfigError(f"{source}: {key}: {value!r} resolves outside {root}; keep relative paths inside that "
                          "folder, or write the path absolute")


def _edited(data: Any, edits: dict[str, Any] | None, path: Path) -> Any:
    """`data` of the file `path` with dotted key paths set (spec.with_key_paths); errors name the file."""
    if not edits:
        return data
    try:
        return with_key_paths(data, edits)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_scene(path: Path, edits: dict[str, Any] | None = None) -> SceneSpec:
    """A scene file, validated; `edits`: dotted key paths set as if written in the file."""
    data = _edited(read_yaml(path), edits, path)
    scene = validate_spec(SceneSpec, data, str(path))
    scene._base_dir = path.resolve().parent
    for key, value in _scene_paths(scene):  # a scene's assets lie in its own folder
        check_inside(path, key, value, scene._base_dir, scene._base_dir)
    return scene


def load_config(path: str | Path, edits: dict[str, Any] | None = None, **overrides: Any) -> DatasetConfig:
    """Read and validate a dataset config; `overrides` (e.g. num_images, seed) replace top-level keys.
    `edits` set dotted key paths as if written in the file (`{"num_images": 64, "scene.blending.mode":
    "hard"}`, what `vision-synth tune` searches); a `scene.` path edits the scene the config names
    (its own file, read from there) or the inline scene."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    edits = dict(edits or {})
    scene_edits = {k[len("scene."):]: edits.pop(k) for k in list(edits) if k.startswith("scene.")}
    data = _edited(data, edits, path)
    if not isinstance(data.get("scene"), str):
        data = _edited(data, {f"scene.{k}": v for k, v in scene_edits.items()}, path)
        scene_edits = {}
    scene_value = data.get("scene")
    scene: SceneSpec | None = None
    # relative paths in a config stay inside its project folder (the one holding configs/ and scenes/)
    project = path.resolve().parent.parent
    if isinstance(scene_value, str):
        try:
            scene_file = find_scene(scene_value, path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: scene: {exc}") from None
        check_inside(path, "scene", scene_value, path.resolve().parent, project)
        scene = load_scene(scene_file, scene_edits)
        data = {**data, "scene": scene}
    config = validate_spec(DatasetConfig, data, str(path))
    config._source = str(path)
    if scene is None:  # inline scene: its paths are relative to the config file
        config.scene._base_dir = path.resolve().parent
        for key, value in _scene_paths(config.scene):
            check_inside(path, f"scene.{key}", value, config.scene._base_dir, project)
    _check_category_names(config, path)
    if config.augment is not None:
        config._pipeline = config.augment.load_pipeline(path.resolve().parent)
    if config.quality is not None:  # its paths are relative to the config file
        config.quality.with_base_dir(path.resolve().parent)
    return config


def _check_category_names(config: DatasetConfig, path: Path) -> None:
    known = config.category_ids
    for name in config.diffusion.prompts if config.diffusion else ():
        if name not in known:
            raise ConfigError(f"{path}: diffusion.prompts.{name}: unknown category {name!r} "
                              f"(categories: {', '.join(known)})")
    for group in ("objects", "defects"):
        for i, entry in enumerate(getattr(config.scene, group)):
            if entry.category not in known:
                raise ConfigError(
                    f"{path}: scene.{group}[{i}].category: unknown category {entry.category!r} "
                    f"(categories: {', '.join(known)})"
                )
