"""Image features for the quality checks: torch-fidelity's Inception-v3 (the FID network), loaded from
a local weights file, or a seeded random-init copy of it as a clearly named proxy.

Nothing is downloaded. The standard FID weights (`pt_inception-2015-12-05-6726825d.pth` of
pytorch-fid, or torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`) come from the
`fidelity.weights` key or the VISION_SYNTH_FID_WEIGHTS environment variable.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import torch

from vision_synth.errors import VisionSynthError
from vision_synth.quality.spec import WEIGHTS_ENV

PROXY_LABEL = "random-init Inception-v3 (proxy features, seed {seed}; not the FID network)"
MISSING_WEIGHTS = (
    "FID needs the Inception-v3 FID weights as a local file, which cannot be downloaded here: set "
    "quality.fidelity.weights (or --fid-weights) or the environment variable {env} to the path of "
    "pt_inception-2015-12-05-6726825d.pth (pytorch-fid) or weights-inception-2015-12-05-6726825d.pth "
    "(torch-fidelity). Without them, `fidelity: proxy` reports FID-proxy/KID-proxy from a random-init "
    "Inception-v3 (not comparable with FID), and `fidelity: off` skips fidelity."
)


def _feature_class():
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise VisionSynthError("fidelity features need torch-fidelity: pip install 'vision_synth[fid]' "
                               "(or set fidelity: off)") from None
    return FeatureExtractorInceptionV3


def inception_weights_path(configured: Path | None) -> Path:
    """The local FID weights file: the configured path, else $VISION_SYNTH_FID_WEIGHTS; an error that
    says what to provide when neither names an existing file."""
    if configured is None:
        env = os.environ.get(WEIGHTS_ENV, "").strip()
        if not env:
            raise VisionSynthError(MISSING_WEIGHTS.format(env=WEIGHTS_ENV))
        configured, source = Path(env).expanduser(), f"${WEIGHTS_ENV}"
    else:
        source = "fidelity.weights"
    if not Path(configured).is_file():
        raise VisionSynthError(f"{configured} ({source}): Inception-v3 weights file not found. "
                               + MISSING_WEIGHTS.format(env=WEIGHTS_ENV))
    return Path(configured)


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of the FID Inception-v3 architecture with seeded random weights (He-normal convs,
    identity batch norms), so activations keep their scale through the network."""
    from torch import nn
    from torchvision.models import inception_v3

    # torchvision's Inception3 with 1008 classes and no aux head has the FID network's parameter
    # names and shapes; only pooling (no parameters) differs in the last two blocks
    model = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, math.sqrt(1.0 / module.in_features), generator=generator)
                module.bias.zero_()
    return model.state_dict()


@dataclass
class FeatureExtractor:
    """Pool features of images (N×D float64) from one Inception-v3; `kind` says whether they are the
    FID network's (`inception`) or a proxy's."""

    model: torch.nn.Module
    kind: Literal["inception", "proxy"]
    layer: str
    device: torch.device
    batch_size: int = 32
    weights: Path | None = None
    weights_sha256: str | None = None
    seed: int = 0

    @property
    def is_proxy(self) -> bool:
        return self.kind == "proxy"

    @property
    def label(self) -> str:
        if self.is_proxy:
            return PROXY_LABEL.format(seed=self.seed) + f", {self.layer}-d pool features"
        return f"Inception-v3 FID network (torch-fidelity), {self.layer}-d features, weights {self.weights}"

    def describe(self) -> dict:
        return {"kind": self.kind, "label": self.label, "layer": int(self.layer),
                "weights": None if self.weights is None else str(self.weights),
                "weights_sha256": self.weights_sha256, "input_size": int(self.model.INPUT_IMAGE_SIZE),
                "device": str(self.device)}

    @torch.inference_mode()
    def _run(self, batch: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous().to(self.device)
        (features,) = self.model(x)
        return features.double().cpu().numpy()

    def __call__(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Features of H×W×3 uint8 images, in order. Images of one size go through together (the
        network resizes them to its input size itself, as FID does)."""
        rows: list[np.ndarray] = []
        pending: list[np.ndarray] = []

        def flush() -> None:
            by_shape: dict[tuple, list[int]] = {}
            for k, image in enumerate(pending):
                by_shape.setdefault(image.shape, []).append(k)
            out = [None] * len(pending)
            for members in by_shape.values():
                feats = self._run([pending[k] for k in members])
                for k, f in zip(members, feats):
                    out[k] = f
            rows.extend(out)
            pending.clear()

        for image in images:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected H×W×3 uint8 images, got {image.shape} {image.dtype}")
            pending.append(image)
            if len(pending) >= self.batch_size:
                flush()
        if pending:
            flush()
        dim = int(self.layer)
        return np.stack(rows) if rows else np.zeros((0, dim))


def load_extractor(kind: Literal["inception", "proxy"], weights: Path | None = None, layer: str = "2048",
                   device: str = "auto", batch_size: int = 32, seed: int = 0) -> FeatureExtractor:
    """The feature network: `inception` from the local weights file (`weights`, else
    $VISION_SYNTH_FID_WEIGHTS), or the seeded random-init `proxy`."""
    from vision_synth.detector import resolve_device

    resolved = resolve_device(device)
    if kind == "inception":
        path = inception_weights_path(weights)
        stat = path.stat()
        key = (kind, str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(layer), str(resolved), 0)
    elif kind == "proxy":
        path, key = None, (kind, None, 0, 0, str(layer), str(resolved), int(seed))
    else:
        raise ValueError(f"kind must be inception or proxy, got {kind!r}")
    model, sha = _network(*key)
    return FeatureExtractor(model, kind, str(layer), resolved, batch_size, path, sha, seed)


@functools.lru_cache(maxsize=1)
def _network(kind: str, path: str | None, size: int, mtime: int, layer: str, device: str, seed: int):
    """The loaded network and its weights' sha256; the last one is kept, so checks run one after
    another in a process (tests, notebooks) load it once. It never changes after loading."""
    feature_class = _feature_class()
    sha = None
    if kind == "inception":
        path = Path(path)
        blob = path.read_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        try:  # the safe loader first: a file that holds more than tensors is refused here
            torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a file that is not a state dict
            raise VisionSynthError(f"{path}: not a torch state dict of Inception-v3 weights "
                                   f"({type(exc).__name__})") from None
        source = io.BytesIO(blob)
    else:
        source = io.BytesIO()
        torch.save(random_inception_state_dict(seed), source)
        source.seek(0)
    try:
        model = feature_class("inception-v3-compat", [layer], feature_extractor_weights_path=source)
    except RuntimeError as exc:  # load_state_dict: missing or unexpected keys, wrong shapes
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VisionSynthError(f"{path}: these are not Inception-v3 FID weights ({first})") from None
    return model.to(torch.device(device)).eval(), sha
