"""The candidate dataset of one trial: the base (an augment spec, a rare policy or a dataset config)
with the trial's settings written into it, loaded by the base's own loader and made by its own
command (`augment_coco`, `augment_rare`, `generate`), cached by a hash of what it depends on.

Each kind knows four things: how to load the base with edits (which validates it, naming the base
file and key), the content key of a loaded base (the cache name), how to make the candidate, and
how to write the base with the settings as a file that runs from anywhere (`best.yaml`: relative
paths made absolute). A rare candidate is the new images only (`synthetic.json`): the real ones
are the real-only arm already.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vision_synth import __version__
from vision_synth.errors import ConfigError
from vision_synth.files import write_atomic, write_json
from vision_synth.spec import key_path_value, read_yaml, with_key_paths


@dataclass(frozen=True)
class Candidate:
    annotations: Path
    images: Path


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _absolute(value: Any, base_dir: Path) -> Any:
    """A path written relative to `base_dir`, made absolute (other values as they are)."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    return os.path.normpath(p if p.is_absolute() else base_dir / p)


def _with_absolute(data: Any, keys: list[str], base_dir: Path) -> Any:
    """`data` with the paths at the dotted `keys` (those that are set) made absolute."""
    edits = {k: _absolute(key_path_value(data, k), base_dir) for k in keys if key_path_value(data, k) is not None}
    return with_key_paths(data, edits)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (released when the process ends, SIGKILL included): two processes
    that need one candidate make it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class AugmentBase:
    """`vision-synth augment --spec BASE` of the source set (default: the real train set)."""

    kind = "augment"

    def __init__(self, path: Path, seed: int | None, fmt: str | None) -> None:
        self.path, self.seed, self.format = Path(path), seed or 0, fmt or "png"

    def load(self, edits: dict[str, Any]):
        from vision_synth.augment.command import COMMAND_LINE_DEFAULTS
        from vision_synth.augment.spec import load_augment_spec

        spec = load_augment_spec(self.path, COMMAND_LINE_DEFAULTS, edits=edits)
        spec.load_pipeline()  # a missing or broken pipeline file is an error now, not in a trial
        return spec

    def key(self, loaded, source: str) -> str:
        pipeline = loaded.load_pipeline()
        return _digest({"kind": self.kind, "version": __version__, "seed": self.seed, "format": self.format,
                        "spec": loaded.model_dump(mode="json", exclude={"pipeline"}), "source": source,
                        "pipeline": None if pipeline is None else pipeline.to_dict()})

    def make(self, loaded, source: tuple[Path, Path], out: Path) -> Candidate:
        from vision_synth.augment.dataset import augment_coco

        if not (out / "annotations.json").is_file():
            augment_coco(source[0], source[1], loaded, out, seed=self.seed, fmt=self.format, overwrite=True,
                         show_progress=False)
        return Candidate(out / "annotations.json", out / "images")

    def written(self, edits: dict[str, Any]) -> dict[str, Any]:
        data = with_key_paths(read_yaml(self.path) or {}, edits)
        return _with_absolute(data, ["pipeline"], self.path.resolve().parent)

    def command(self, best: Path, source: tuple[Path, Path]) -> str:
        return (f"vision-synth augment --coco {source[0]} --images {source[1]} --spec {best} --seed {self.seed} "
                f"--format {self.format} --out OUT")


class RareBase:
    """`vision-synth augment-rare --config BASE` of the source set; the candidate is its new images."""

    kind = "rare"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self, edits: dict[str, Any]):
        """The policy as `augment-rare --config` reads the edited file (rare/policy.py `load_policy`,
        whatever its defaults), from a temporary copy of the edited file."""
        from vision_synth.rare.policy import load_policy

        with tempfile.TemporaryDirectory(prefix="vision_synth_tune_") as tmp:
            copy = Path(tmp) / self.path.name
            write_atomic(copy, yaml.safe_dump(self.written(edits), sort_keys=False))
            try:
                return load_policy(copy)
            except ConfigError as exc:  # name the user's file, not the copy
                raise ConfigError(str(exc).replace(str(copy), f"{self.path} (with the trial's settings)")) from None

    def key(self, loaded, source: str) -> str:
        return _digest({"kind": self.kind, "version": __version__, "policy": loaded.model_dump(mode="json"),
                        "source": source})

    def make(self, loaded, source: tuple[Path, Path], out: Path) -> Candidate:
        from vision_synth.coco.reader import is_synthetic
        from vision_synth.coco.writer import write_coco
        from vision_synth.rare.dataset import augment_rare

        synthetic = out / "synthetic.json"
        if not synthetic.is_file():
            if not (out / "annotations_train.json").is_file():
                augment_rare(source[0], source[1], loaded, out, policy_path=str(self.path), overwrite=True,
                             show_progress=False)
            data = json.loads((out / "annotations_train.json").read_text())
            images = [im for im in data["images"] if is_synthetic(im)]
            ids = {im["id"] for im in images}
            write_coco(synthetic, {**data.get("info", {}), "tune": "new images of augment-rare only"},
                       data["categories"], images, [a for a in data["annotations"] if a["image_id"] in ids])
        return Candidate(synthetic, out / "images")

    def written(self, edits: dict[str, Any]) -> dict[str, Any]:
        data = read_yaml(self.path)
        return with_key_paths({} if data is None else data, edits)

    def command(self, best: Path, source: tuple[Path, Path]) -> str:
        return f"vision-synth augment-rare --coco {source[0]} --images {source[1]} --config {best} --out OUT"


SCENE_PATHS = ["region", "background.images", "background.regions"]
OBJECT_PATHS = ["source.path", "source.annotations", "source.images"]
QUALITY_PATHS = ["reference", "reference_images", "fidelity.weights", "utility.reference_val",
                 "utility.reference_val_images", "memorisation.train_reference", "memorisation.train_reference_images"]


class GenerateBase:
    """`vision-synth generate BASE` (its quality: section aside: tune measures utility itself)."""

    kind = "generate"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self, edits: dict[str, Any]):
        from vision_synth.config import load_config
        from vision_synth.runner import make_generator

        config = load_config(self.path, edits={**edits, "quality": None})
        make_generator(config)  # the assets too: sprites, COCO sources, backgrounds
        return config

    def key(self, loaded, source: str) -> str:
        data = loaded.model_dump(mode="json", exclude={"quality"})
        if loaded.pipeline is not None:
            data["augment"]["pipeline"] = loaded.pipeline.to_dict()
        scene = data["scene"]  # paths as they resolve, so best.yaml (absolute paths) has the same key
        for key in SCENE_PATHS:
            if key_path_value(scene, key) is not None:
                scene = with_key_paths(scene, {key: os.path.normpath(loaded.scene.resolve(key_path_value(scene, key)))})
        for i in range(len(scene["objects"])):
            for key in OBJECT_PATHS:
                value = key_path_value(scene, f"objects[{i}].{key}")
                if value is not None:
                    scene = with_key_paths(scene, {f"objects[{i}].{key}": os.path.normpath(loaded.scene.resolve(value))})
        data["scene"] = {k: v for k, v in scene.items() if k not in ("name", "description")}
        return _digest({"kind": self.kind, "version": __version__, "config": data})

    def make(self, loaded, source: tuple[Path, Path] | None, out: Path) -> Candidate:
        from vision_synth.runner import generate

        if not (out / "annotations.json").is_file():
            generate(loaded, out, overwrite=False, show_progress=False, distributed=False)
        return Candidate(out / "annotations.json", out / "images")

    def written(self, edits: dict[str, Any]) -> dict[str, Any]:
        from vision_synth.config import find_scene

        base_dir = self.path.resolve().parent
        scene_edits = {k[len("scene."):]: v for k, v in edits.items() if k.startswith("scene.")}
        data = with_key_paths(read_yaml(self.path), {k: v for k, v in edits.items() if not k.startswith("scene.")})
        scene = data.get("scene")
        if isinstance(scene, str):
            scene_file = find_scene(scene, self.path.parent).resolve()
            if scene_edits:  # the named scene, edited, written inline with its paths absolute
                scene = _scene_absolute(with_key_paths(read_yaml(scene_file), scene_edits), scene_file.parent)
            else:
                scene = str(scene_file)
        else:
            scene = _scene_absolute(with_key_paths(scene, scene_edits), base_dir)
        data = {**data, "scene": scene}
        data = _with_absolute(data, ["augment.pipeline"], base_dir)
        if isinstance(data.get("quality"), dict):
            data = {**data, "quality": _with_absolute(data["quality"], QUALITY_PATHS, base_dir)}
        return data

    def command(self, best: Path, source) -> str:
        return f"vision-synth generate {best} --out OUT"


def _scene_absolute(scene: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    scene = _with_absolute(scene, SCENE_PATHS, base_dir)
    for i in range(len(scene.get("objects") or [])):
        scene = _with_absolute(scene, [f"objects[{i}].{k}" for k in OBJECT_PATHS], base_dir)
    return scene


def make_base(spec):
    """The base of a tune spec."""
    kind = spec.base.kind
    if kind == "augment":
        return AugmentBase(spec.base_config, spec.base.seed, spec.base.format)
    if kind == "rare":
        return RareBase(spec.base_config)
    return GenerateBase(spec.base_config)


def ensure_candidate(base, loaded, source: tuple[Path, Path] | None, key: str, root: Path) -> Candidate:
    """The candidate of `key` under `root`, made now unless it is there (one process makes it; a
    process killed half-way leaves a stage the next run removes, or a resumable generate run)."""
    out = root / key
    with _locked(root / f".{key}.lock"):
        candidate = base.make(loaded, source, out)
        done = root / key / "candidate.json"
        if not done.is_file():
            write_json(done, {"kind": base.kind, "key": key, "annotations": os.path.relpath(candidate.annotations, out),
                              "images": os.path.relpath(candidate.images, out)}, indent=2)
    return candidate
