"""Load a diffusers pipeline for a mode: offline first, safetensors only, checked, set up for speed.

Where the files come from: a local folder, else the local Hugging Face cache (a hub id), and only
with `offline: false` (and HF_HUB_OFFLINE unset) from the hub. Nothing is unpickled: every model
folder must hold .safetensors weights, and diffusers is called with `use_safetensors=True`.
After loading, the tokenizer is checked against the text encoder (a CLIPTokenizer whose
vocab.json/merges.txt are missing loads silently with 2 tokens and turns every prompt into
end-of-text tokens). `model_hash` identifies the exact files used, for provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vision_synth.errors import VisionSynthError

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
HASHED_SUFFIXES = (".safetensors", ".json", ".txt")
# a byte-level BPE vocabulary holds at least its 256 byte symbols and two special tokens
MIN_VOCAB = 258
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

PIPELINE_CLASSES = {
    "inpaint-insert": "StableDiffusionInpaintPipeline",
    "layout-to-image": "StableDiffusionControlNetPipeline",
    "refine": "StableDiffusionImg2ImgPipeline",
}
SPEC_KEYS = {"pipeline": "diffusion.model", "controlnet": "diffusion.controlnet", "lora": "diffusion.lora.path",
             "semantic": "diffusion.check.semantic.model"}


@dataclass(frozen=True)
class ModelFiles:
    """A model as found on disk: what the config named, the folder, and a hash of its files."""

    name: str
    folder: Path
    sha256: str


@dataclass(frozen=True, eq=False)
class LoadedPipeline:
    pipe: object  # the diffusers pipeline, on `device`, in `dtype`
    device: object  # torch.device
    dtype: object  # torch.dtype
    model: str  # what was loaded, in the config's words (provenance "model")
    model_hash: str  # sha256 prefix over every file loaded (provenance "model_hash")
    attention: str  # "sdpa" or "xformers"
    variant: str | None = None  # the weight variant loaded (None: the plain files)
    controlnet_variant: str | None = None


# ---------------------------------------------------------------------------------- where from
def is_offline(offline_flag: bool) -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return offline_flag or env in ("1", "true", "yes", "on")


# components of a Stable Diffusion pipeline folder that the modes load (model_index.json names them)
PIPELINE_MODELS = ("unet", "vae", "text_encoder")
SAFETY_MODELS = ("safety_checker",)


def include_patterns(kind: str, variant: str | None, safety_checker: bool = False) -> list[str]:
    """The files of a hub repo that loading uses: configs, tokenizer, and the safetensors of the
    variant (all safetensors when the variant is auto), nothing else (no .bin, no .ckpt)."""
    weights = "*.safetensors" if variant == "auto" else (f"*.{variant}.safetensors" if variant else
                                                         "diffusion_pytorch_model.safetensors")
    if kind == "controlnet":
        return ["config.json", weights]
    models = PIPELINE_MODELS + (SAFETY_MODELS if safety_checker else ())
    plain = {"unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
             "text_encoder": "model.safetensors", "safety_checker": "model.safetensors"}
    patterns = ["model_index.json", "scheduler/*", "tokenizer/*"]
    if safety_checker:
        patterns.append("feature_extractor/*")
    for m in models:
        patterns += [f"{m}/config.json", f"{m}/{plain[m] if variant is None else weights}"]
    return patterns


def missing_message(kind: str, name: str, patterns: list[str]) -> str:
    key = SPEC_KEYS[kind]
    include = " ".join(f'"{p}"' for p in patterns)
    return (f"{key} {name!r}: not found on this machine (no such folder, and not in the local Hugging Face "
            f"cache; downloads are off); on a connected machine run `hf download {name} --include {include}` "
            f"(`huggingface-cli download` with older huggingface_hub) and copy the cache here, or "
            f"save it with save_pretrained(folder, safe_serialization=True) and set {key} to that folder")


def resolve_folder(kind: str, name: str, offline: bool, variant: str | None = "auto",
                   safety_checker: bool = False, allow_patterns: list[str] | None = None) -> Path:
    """The local folder holding model `name`: the folder itself, else its snapshot in the HF cache
    (downloaded first, only the files loading uses, when not offline)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.is_file():
        raise VisionSynthError(f"{SPEC_KEYS[kind]} {name!r}: is a file; give the folder a diffusers "
                               "save_pretrained wrote (single-file checkpoints must be converted first)")
    if not HUB_ID.match(name):
        raise VisionSynthError(f"{SPEC_KEYS[kind]} {name!r}: folder not found")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = allow_patterns or include_patterns(kind, variant, safety_checker)
    try:
        if offline:
            return Path(snapshot_download(name, local_files_only=True))
        return Path(snapshot_download(name, allow_patterns=patterns))
    except LocalEntryNotFoundError:
        raise VisionSynthError(missing_message(kind, name, patterns)) from None
    except OSError as exc:  # network or hub errors when online
        raise VisionSynthError(f"{SPEC_KEYS[kind]} {name!r}: download failed ({first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- what is in there
def weight_variant(path: Path) -> str | None:
    """The variant of a weight file: diffusion_pytorch_model.safetensors and
    model-00001-of-00002.safetensors have none; diffusion_pytorch_model.fp16.safetensors and
    model.fp16-00001-of-00002.safetensors are fp16 (diffusers' and transformers' naming)."""
    parts = path.name.split(".")
    return parts[1].split("-")[0] if len(parts) > 2 else None


def safetensors_variants(folder: Path) -> dict[str | None, list[Path]]:
    """The .safetensors weight files of one model folder, by variant (None: the plain files)."""
    found: dict[str | None, list[Path]] = {}
    for f in sorted(folder.iterdir()) if folder.is_dir() else []:
        if f.name.endswith(".safetensors"):
            found.setdefault(weight_variant(f), []).append(f)
    return found


def _found(folder: Path) -> str:
    names = [f.name for f in sorted(folder.iterdir()) if f.is_file() and not f.name.endswith(".json")] \
        if folder.is_dir() else []
    return ", ".join(names) or "no weight files"


def model_components(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Sub-folders of a pipeline folder that hold models (a config.json beside weights)."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise VisionSynthError(f"{folder}: no model_index.json, so not a diffusers pipeline folder (a single-file "
                               ".safetensors checkpoint must first be converted with from_single_file + save_pretrained)")
    entries = json.loads(index.read_text())
    names = []
    for name, value in entries.items():
        if name.startswith("_") or name in skip or not isinstance(value, list) or value[0] is None:
            continue
        if (folder / name / "config.json").is_file():
            names.append(name)
    return names


def check_safetensors(folder: Path, variant: str | None, what: str, key: str = "diffusion.variant") -> list[Path]:
    """The safetensors files diffusers will load from one model folder for `variant`: the variant's
    files where the folder has them, else the plain ones (as diffusers falls back per component).
    Refuses pickle-only or empty folders, naming the files and variants found."""
    found = safetensors_variants(folder)
    if variant in found:
        return found[variant]
    if None in found:
        return found[None]
    others = sorted(v for v in found if v is not None)
    if others:
        raise VisionSynthError(
            f"{folder}: {what} has no plain .safetensors weights{f' and none of variant {variant!r}' if variant else ''} "
            f"(found {_found(folder)}); its safetensors come as variant {', '.join(others)}: set {key} "
            f"({', '.join(others)} or auto)")
    pickles = [f.name for f in sorted(folder.iterdir()) if f.name.endswith(PICKLE_SUFFIXES)] if folder.is_dir() else []
    if pickles:
        raise VisionSynthError(
            f"{folder}: {what} has only pickle weights ({', '.join(pickles)}); vision_synth loads safetensors only: "
            "on a machine you trust, load it and save_pretrained(folder, safe_serialization=True)")
    raise VisionSynthError(f"{folder}: {what} has no .safetensors weights (found {_found(folder)}); "
                           "copy the complete model folder")


def choose_variant(folders: dict[str, Path], variant: str | None, key: str) -> str | None:
    """The variant to load a model (or the component folders of a pipeline) with. `auto`: none
    (the plain files) where every folder has plain .safetensors, else the one safetensors variant
    all the others have (stable-diffusion-inpainting: .bin beside .fp16.safetensors → fp16)."""
    if variant != "auto":
        return variant
    lacking = {what: folder for what, folder in folders.items() if None not in safetensors_variants(folder)}
    if not lacking:
        return None
    offered = {what: {v for v in safetensors_variants(f) if v is not None} for what, f in lacking.items()}
    common = set.intersection(*offered.values())
    if len(common) == 1:
        return common.pop()
    for what, variants in offered.items():
        if not variants:  # no safetensors at all: the precise message (pickle only, empty)
            check_safetensors(lacking[what], None, what)
    detail = "; ".join(f"{what}: {_found(folder)}" for what, folder in lacking.items())
    choice = (f"variants {', '.join(sorted(common))} would all do: set {key} to one" if common
              else f"no one safetensors variant covers them all: set {key}")
    raise VisionSynthError(f"{key}: auto found no plain .safetensors in {', '.join(lacking)} ({detail}); {choice}")


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of a file; hub-cache files are links to blobs named by their sha256, taken as is."""
    real = path.resolve()
    if re.fullmatch(r"[0-9a-f]{64}", real.name):
        return real.name
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with open(real, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def files_hash(files: list[tuple[str, Path]]) -> str:
    """sha256 over (name, file sha256) pairs, sorted by name."""
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(f"{name} {_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _config_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.name.endswith((".json", ".txt"))]


def pipeline_files(name: str, folder: Path, variant: str | None, skip: tuple[str, ...]) -> ModelFiles:
    """Check a pipeline folder (every model component in safetensors of `variant`, or plain where
    a component has no such variant) and hash what will be loaded."""
    files = [(f.name, f) for f in _config_files(folder)]
    for component in model_components(folder, skip):
        sub = folder / component
        weights = check_safetensors(sub, variant, f"component {component}")
        files += [(f"{component}/{f.name}", f) for f in _config_files(sub) + weights]
    for component in ("tokenizer", "scheduler"):
        if (folder / component).is_dir():
            files += [(f"{component}/{f.name}", f) for f in _config_files(folder / component)]
    return ModelFiles(name, folder, files_hash(files))


def model_files(name: str, folder: Path, variant: str | None, what: str,
                key: str = "diffusion.controlnet_variant") -> ModelFiles:
    weights = check_safetensors(folder, variant, what, key)
    return ModelFiles(name, folder, files_hash([(f.name, f) for f in _config_files(folder) + weights]))


# --------------------------------------------------------------------------------------- checks
def check_tokenizer(tokenizer, text_encoder, where: Path) -> None:
    """Refuse a tokenizer that cannot be the text encoder's own (see the module docstring)."""
    size = len(tokenizer)
    vocab = int(text_encoder.config.vocab_size)
    if size > vocab or size < max(MIN_VOCAB, 0.9 * vocab):
        raise VisionSynthError(
            f"{where / 'tokenizer'}: tokenizer has {size} tokens but the text encoder's vocabulary is {vocab}; "
            "its vocab.json and merges.txt (or tokenizer.json) are missing or belong to another model: "
            "copy the model's tokenizer/ folder again")
    positions = int(text_encoder.config.max_position_embeddings)
    if tokenizer.model_max_length > positions:
        raise VisionSynthError(
            f"{where / 'tokenizer'}: model_max_length is {tokenizer.model_max_length} but the text encoder "
            f"takes {positions} tokens; tokenizer_config.json is missing or wrong")


# ----------------------------------------------------------------------------------- device, speed
def pick_device(choice: str):
    """CUDA when present (under accelerate, this process's own GPU), else CPU."""
    import torch

    if choice != "cpu" and torch.cuda.is_available():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            return PartialState().device
        return torch.device("cuda", torch.cuda.current_device())
    if choice == "cuda":
        raise VisionSynthError("diffusion.device: cuda was asked for but CUDA is not available")
    return torch.device("cpu")


def pick_dtype(choice: str, device):
    import torch

    if choice == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, choice)


def make_scheduler(name: str, config):
    """A scheduler of kind `name` built from the pipeline's own scheduler config (betas, offsets)."""
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, UniPCMultistepScheduler)

    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    kinds = {"euler": EulerDiscreteScheduler, "euler-ancestral": EulerAncestralDiscreteScheduler,
             "ddim": DDIMScheduler, "unipc": UniPCMultistepScheduler}
    return kinds[name].from_config(config)


def xformers_available() -> bool:
    try:
        import xformers  # noqa: F401
    except ImportError:
        return False
    return True


def choose_attention(choice: str, device) -> str:
    cuda = device.type == "cuda"
    if choice == "xformers":
        if not cuda:
            raise VisionSynthError("diffusion.attention: xformers needs CUDA (use sdpa or auto on CPU)")
        if not xformers_available():
            raise VisionSynthError("diffusion.attention: xformers is not installed (pip install xformers, "
                                   "or use sdpa)")
        return "xformers"
    if choice == "auto" and cuda and xformers_available():
        return "xformers"
    return "sdpa"


def denoisers(pipe) -> list:
    """The models run once per step: the UNet and, when present, the ControlNet."""
    return [m for m in (pipe.unet, getattr(pipe, "controlnet", None)) if m is not None]


def apply_speed_settings(pipe, spec, device) -> str:
    """Attention kernel, memory format, VAE slicing/tiling, torch.compile; returns the attention used."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    attention = choose_attention(spec.attention, device)
    if attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    else:
        for model in denoisers(pipe):
            model.set_attn_processor(AttnProcessor2_0())  # torch.nn.functional.scaled_dot_product_attention
    if spec.channels_last and device.type == "cuda":
        for model in [*denoisers(pipe), pipe.vae]:
            model.to(memory_format=torch.channels_last)
    if spec.vae_slicing:
        pipe.vae.enable_slicing()
    if spec.vae_tiling:
        pipe.vae.enable_tiling()
    if spec.compile:
        pipe.unet = torch.compile(pipe.unet)
        if getattr(pipe, "controlnet", None) is not None:
            pipe.controlnet = torch.compile(pipe.controlnet)
    return attention


# ---------------------------------------------------------------------------------------- loading
def lora_file(lora, offline: bool) -> Path:
    """The LoRA .safetensors file named by the config (a file, a folder, or a hub id)."""
    path = Path(lora.path).expanduser()
    if path.is_file():
        file = path.resolve()
    else:
        pattern = lora.weight_name or "*.safetensors"
        folder = resolve_folder("lora", lora.path, offline, allow_patterns=[pattern])
        candidates = sorted(folder.glob(pattern))
        if lora.weight_name is None and len(candidates) != 1:
            found = ", ".join(c.name for c in candidates) or "no"
            raise VisionSynthError(f"diffusion.lora: {folder} holds {found} .safetensors files; set lora.weight_name")
        file = folder / (lora.weight_name or candidates[0].name)
    if not file.name.endswith(".safetensors"):
        raise VisionSynthError(f"diffusion.lora: {file}: only .safetensors LoRA files are loaded (no pickle)")
    if not file.is_file():
        raise VisionSynthError(f"diffusion.lora: {file} not found")
    return file


def load_lora(pipe, lora, offline: bool) -> ModelFiles:
    """Fuse LoRA weights (safetensors only) into the pipeline's models."""
    from diffusers.utils import USE_PEFT_BACKEND

    file = lora_file(lora, offline)
    if not USE_PEFT_BACKEND:
        raise VisionSynthError("diffusion.lora: loading LoRA weights needs the peft package (pip install peft)")
    pipe.load_lora_weights(str(file.parent), weight_name=file.name, use_safetensors=True, adapter_name="lora")
    pipe.fuse_lora(lora_scale=lora.scale)
    return ModelFiles(lora.path, file.parent, files_hash([(file.name, file)]))


def dtype_keyword(loader) -> str:
    """`dtype` or `torch_dtype`: the name under which `loader` (a diffusers from_pretrained) takes the
    weights' dtype. Read from its public signature, or, where it takes **kwargs (diffusers does),
    from the parameters its docstring documents: diffusers 0.36 renamed torch_dtype to dtype and
    warns on the old name."""
    import inspect

    parameters = inspect.signature(loader).parameters
    for name in ("dtype", "torch_dtype"):
        if name in parameters:
            return name
    documented = re.findall(r"^\s*(dtype|torch_dtype) \(", inspect.getdoc(loader) or "", re.M)
    return "dtype" if "dtype" in documented else "torch_dtype"


def dtype_argument(dtype, loader=None) -> dict:
    """{keyword: dtype} for `loader` (default: DiffusionPipeline.from_pretrained)."""
    if loader is None:
        from diffusers import DiffusionPipeline

        loader = DiffusionPipeline.from_pretrained
    return {dtype_keyword(loader): dtype}


def _pipeline_class(mode: str):
    import diffusers

    return getattr(diffusers, PIPELINE_CLASSES[mode])


# UNet input channels per mode: 9 = latents + mask + masked-image latents (an inpainting model)
UNET_CHANNELS = {"inpaint-insert": 9, "layout-to-image": 4, "refine": 4}


def _read_config(path: Path, key: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VisionSynthError(f"{key}: cannot read {path}: {first_line(exc)}") from None


def check_compatible(mode: str, folder: Path, controlnet: Path | None = None) -> None:
    """Refuse, from the config files alone (before minutes of loading), a model the mode cannot run:
    an SDXL or other non-SD-1.x/2.x pipeline, a UNet with the wrong input channels, a ControlNet
    made for another UNet."""
    key = SPEC_KEYS["pipeline"]
    index = _read_config(folder / "model_index.json", key)
    cls = str(index.get("_class_name", ""))
    if "XL" in cls or "text_encoder_2" in index:
        raise VisionSynthError(f"{key}: {folder} is a Stable Diffusion XL pipeline ({cls}); mode {mode} runs "
                               f"{PIPELINE_CLASSES[mode]} (Stable Diffusion 1.x/2.x models)")
    if not (folder / "unet" / "config.json").is_file():
        raise VisionSynthError(f"{key}: {folder} ({cls or 'no _class_name'}) has no unet/; mode {mode} runs "
                               f"{PIPELINE_CLASSES[mode]} (Stable Diffusion 1.x/2.x models)")
    unet = _read_config(folder / "unet" / "config.json", key)
    channels, wanted = int(unet.get("in_channels", 4)), UNET_CHANNELS[mode]
    if channels != wanted:
        kind = "an inpainting model" if channels == 9 else "a text-to-image model" if channels == 4 else "not SD 1.x/2.x"
        need = "an inpainting model (9 channels)" if wanted == 9 else "a text-to-image model (4 channels)"
        raise VisionSynthError(f"{key}: {folder}: its UNet takes {channels} input channels ({kind}); mode {mode} "
                               f"needs {need}")
    if controlnet is not None:
        ckey = SPEC_KEYS["controlnet"]
        config = _read_config(controlnet / "config.json", ckey)
        if config.get("_class_name") != "ControlNetModel":
            raise VisionSynthError(f"{ckey}: {controlnet} holds a {config.get('_class_name')}, not a ControlNetModel")
        if config.get("cross_attention_dim") != unet.get("cross_attention_dim"):
            raise VisionSynthError(
                f"{ckey}: {controlnet} was made for a UNet with cross_attention_dim {config.get('cross_attention_dim')}, "
                f"but {folder}'s UNet has {unet.get('cross_attention_dim')} (an SD 1.5 ControlNet needs an SD 1.5 model)")


def load_pipeline(spec) -> LoadedPipeline:
    """The pipeline of `spec.mode`, loaded from local files and set up for `spec`'s device and speed."""
    from diffusers import ControlNetModel, DiffusionPipeline

    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device)
    offline = is_offline(spec.offline)
    skip = () if spec.safety_checker else ("safety_checker", "feature_extractor")
    folder = resolve_folder("pipeline", spec.model, offline, spec.variant, spec.safety_checker)
    components = {f"component {c}": folder / c for c in model_components(folder, skip)}
    variant = choose_variant(components, spec.variant, "diffusion.variant")
    controlnet_folder = controlnet_variant = None
    if spec.controlnet is not None:
        controlnet_folder = resolve_folder("controlnet", spec.controlnet, offline, spec.controlnet_variant)
        controlnet_variant = choose_variant({"the ControlNet": controlnet_folder}, spec.controlnet_variant,
                                            "diffusion.controlnet_variant")
    check_compatible(spec.mode, folder, controlnet_folder)
    base = pipeline_files(spec.model, folder, variant, skip)
    common = dict(**dtype_argument(dtype, DiffusionPipeline.from_pretrained), use_safetensors=True,
                  local_files_only=True)
    extra: dict = {}
    parts = [base]
    if controlnet_folder is not None:
        parts.append(model_files(spec.controlnet, controlnet_folder, controlnet_variant, "the ControlNet"))
        extra["controlnet"] = load_or_explain(lambda: ControlNetModel.from_pretrained(
            controlnet_folder, **common, variant=controlnet_variant), "controlnet", controlnet_folder)
    if not spec.safety_checker:
        extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    cls = _pipeline_class(spec.mode)
    pipe = load_or_explain(lambda: cls.from_pretrained(base.folder, **common, variant=variant, **extra), "pipeline", base.folder)
    check_tokenizer(pipe.tokenizer, pipe.text_encoder, base.folder)
    if spec.lora is not None:
        parts.append(load_lora(pipe, spec.lora, offline))
    pipe.scheduler = make_scheduler(spec.scheduler, pipe.scheduler.config)
    pipe.to(device)
    attention = apply_speed_settings(pipe, spec, device)
    pipe.set_progress_bar_config(disable=True)
    model = " + ".join(p.name for p in parts)
    return LoadedPipeline(pipe, device, dtype, model, combined_hash(parts), attention, variant, controlnet_variant)


def combined_hash(parts: list[ModelFiles]) -> str:
    """The provenance hash of a pipeline with its ControlNet and LoRA: 16 hex digits."""
    digest = hashlib.sha256("\n".join(p.sha256 for p in parts).encode())
    return digest.hexdigest()[:16]


def load_or_explain(load, kind: str, folder: Path):
    """Run a diffusers loader; its errors (broken folders) become one line naming the folder."""
    try:
        return load()
    except (OSError, ValueError, KeyError) as exc:
        raise VisionSynthError(f"{SPEC_KEYS[kind]}: cannot load {folder}: {first_line(exc)}") from None
