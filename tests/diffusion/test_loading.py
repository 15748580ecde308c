"""Model loading: local folders and the HF cache only, safetensors only, real tokenizers, clear errors."""

import hashlib
import json
import re
import shutil

import pytest
import torch

from diffusion_helpers import TINY_CLIP, add_safety_checker, diffusion_spec, publish_like_hub
from vision_synth.diffusion.loading import (PIPELINE_CLASSES, choose_attention, dtype_keyword, is_offline, load_lora,
                                            load_pipeline, make_scheduler, missing_message, pick_device, pipeline_files,
                                            include_patterns)
from vision_synth.diffusion.spec import LoraSpec
from vision_synth.errors import VisionSynthError

MODES = list(PIPELINE_CLASSES)


def copy_model(models, mode, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(models.folder(mode), folder)
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_loads_through_our_code(tiny_models, no_network, mode):
    from diffusers import DPMSolverMultistepScheduler
    from diffusers.models.attention_processor import AttnProcessor2_0

    loaded = load_pipeline(diffusion_spec(tiny_models, mode))
    pipe = loaded.pipe
    assert type(pipe).__name__ == PIPELINE_CLASSES[mode]
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # the model's own betas carried over
    assert loaded.attention == "sdpa"
    assert all(isinstance(p, AttnProcessor2_0) for p in pipe.unet.attn_processors.values())
    assert loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert pipe.vae.use_slicing and not pipe.vae.use_tiling
    assert re.fullmatch(r"[0-9a-f]{16}", loaded.model_hash)
    if mode == "layout-to-image":
        assert pipe.controlnet is not None and loaded.model.endswith(f" + {tiny_models.controlnet}")


@pytest.mark.parametrize("name, cls", [("dpmsolver++", "DPMSolverMultistepScheduler"),
                                       ("euler", "EulerDiscreteScheduler"),
                                       ("euler-ancestral", "EulerAncestralDiscreteScheduler"),
                                       ("ddim", "DDIMScheduler"), ("unipc", "UniPCMultistepScheduler")])
def test_scheduler_choice_keeps_the_models_betas(name, cls):
    from vision_synth.diffusion.tiny import sd_scheduler

    scheduler = make_scheduler(name, sd_scheduler().config)
    assert type(scheduler).__name__ == cls
    assert scheduler.config.beta_end == 0.012 and scheduler.config.beta_schedule == "scaled_linear"


def test_missing_hub_model_is_one_clear_line(empty_hub_cache, no_network):
    from vision_synth.diffusion.spec import DiffusionSpec

    with pytest.raises(VisionSynthError) as err:
        load_pipeline(DiffusionSpec(mode="inpaint-insert", model="nobody/no-such-model", safety_checker=False))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("diffusion.model 'nobody/no-such-model': not found on this machine")
    assert "`hf download nobody/no-such-model --include " in message and "save_pretrained" in message
    # only what loading uses: configs, tokenizer and the safetensors of unet, vae and text encoder
    assert '"unet/*.safetensors"' in message and '"text_encoder/*.safetensors"' in message
    assert "safety_checker" not in message and ".bin" not in message


def test_missing_controlnet_names_its_key(tiny_models, empty_hub_cache, no_network):
    spec = diffusion_spec(tiny_models, "layout-to-image", controlnet="nobody/no-such-controlnet")
    with pytest.raises(VisionSynthError, match=r"^diffusion.controlnet 'nobody/no-such-controlnet': not found"):
        load_pipeline(spec)


def test_offline_even_when_the_spec_allows_downloads(monkeypatch, empty_hub_cache, no_network):
    from vision_synth.diffusion.spec import DiffusionSpec

    assert not is_offline(False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline(False)
    with pytest.raises(VisionSynthError, match="not found on this machine"):
        load_pipeline(DiffusionSpec(mode="inpaint-insert", model="nobody/no-such-model", offline=False))


def test_missing_folder(tmp_path):
    from vision_synth.diffusion.spec import DiffusionSpec

    with pytest.raises(VisionSynthError, match="folder not found"):
        load_pipeline(DiffusionSpec(mode="inpaint-insert", model=str(tmp_path / "nowhere")))


def test_loads_from_the_local_hub_cache(tiny_models, empty_hub_cache, no_network):
    repo = empty_hub_cache / "models--tiny--sd-inpaint"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(tiny_models.inpaint, snapshot)
    # as huggingface_hub stores it: the snapshot file links to a blob named by its sha256
    weights = snapshot / "unet" / "diffusion_pytorch_model.safetensors"
    blob = repo / "blobs" / hashlib.sha256(weights.read_bytes()).hexdigest()
    blob.parent.mkdir()
    weights.rename(blob)
    weights.symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    cached = load_pipeline(diffusion_spec(tiny_models, "inpaint-insert", model="tiny/sd-inpaint"))
    local = load_pipeline(diffusion_spec(tiny_models, "inpaint-insert"))
    assert cached.model == "tiny/sd-inpaint"
    assert cached.model_hash == local.model_hash  # same files, same hash, wherever they lie


def test_pickle_only_weights_are_refused(tiny_models, tmp_path):
    from safetensors.torch import load_file

    folder = copy_model(tiny_models, "inpaint-insert", tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(VisionSynthError, match=r"unet: component unet has only pickle weights \(diffusion_pytorch_model.bin\)"):
        load_pipeline(diffusion_spec(tiny_models, "inpaint-insert", model=str(folder)))


def test_nothing_is_unpickled(tiny_models, monkeypatch, no_network):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    for mode in MODES:
        load_pipeline(diffusion_spec(tiny_models, mode))


def test_pickle_lora_is_refused(tmp_path):
    file = tmp_path / "lora.bin"
    file.write_bytes(b"not loaded")
    with pytest.raises(VisionSynthError, match=r"only .safetensors LoRA files are loaded \(no pickle\)"):
        load_lora(None, LoraSpec(path=str(file)), offline=True)


def test_lora_without_peft_says_so(tmp_path):
    from diffusers.utils import USE_PEFT_BACKEND

    if USE_PEFT_BACKEND:
        pytest.skip("peft is installed")
    file = tmp_path / "lora.safetensors"
    file.write_bytes(b"{}")
    with pytest.raises(VisionSynthError, match="needs the peft package"):
        load_lora(None, LoraSpec(path=str(file)), offline=True)


def test_two_token_tokenizer_is_refused(tiny_models, tmp_path):
    from transformers import CLIPTokenizer

    folder = copy_model(tiny_models, "refine", tmp_path)
    (folder / "tokenizer" / "tokenizer.json").unlink()
    # the silent failure the guard is for: the tokenizer loads, with a vocabulary of 2
    assert len(CLIPTokenizer.from_pretrained(folder / "tokenizer")) == 2
    with pytest.raises(VisionSynthError, match=r"tokenizer has 2 tokens but the text encoder's vocabulary is 680"):
        load_pipeline(diffusion_spec(tiny_models, "refine", model=str(folder)))


def test_tokenizer_without_max_length_is_refused(tiny_models, tmp_path):
    folder = copy_model(tiny_models, "refine", tmp_path)
    config_file = folder / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("model_max_length")
    config_file.write_text(json.dumps(config))
    with pytest.raises(VisionSynthError, match="model_max_length is .* but the text encoder takes 77 tokens"):
        load_pipeline(diffusion_spec(tiny_models, "refine", model=str(folder)))


def test_tiny_vocabulary_makes_word_tokens():
    from vision_synth.diffusion.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer(TINY_CLIP)
    ids = tokenizer("a scratch on brushed metal").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "scratch</w>", "on</w>",
                                                    "brushed</w>", "metal</w>", "<|endoftext|>"]


def test_broken_folder_is_one_line(tiny_models, tmp_path):
    folder = copy_model(tiny_models, "refine", tmp_path)
    (folder / "vae" / "config.json").unlink()
    with pytest.raises(VisionSynthError, match=r"^diffusion.model: cannot load .*model") as err:
        load_pipeline(diffusion_spec(tiny_models, "refine", model=str(folder)))
    assert "\n" not in str(err.value)


def test_model_hash_follows_the_weights(tiny_models, tmp_path):
    from vision_synth.diffusion.tiny import tiny_unet

    original = pipeline_files("m", tiny_models.base, None, ()).sha256
    folder = copy_model(tiny_models, "refine", tmp_path)
    assert pipeline_files("m", folder, None, ()).sha256 == original
    tiny_unet(seed=1).save_pretrained(folder / "unet", safe_serialization=True)
    assert pipeline_files("m", folder, None, ()).sha256 != original


def test_attention_choice():
    cpu = torch.device("cpu")
    assert choose_attention("auto", cpu) == "sdpa"
    assert choose_attention("sdpa", cpu) == "sdpa"
    with pytest.raises(VisionSynthError, match="xformers needs CUDA"):
        choose_attention("xformers", cpu)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_asked_for_without_cuda():
    assert pick_device("auto").type == "cpu"
    with pytest.raises(VisionSynthError, match="CUDA is not available"):
        pick_device("cuda")


def test_safety_checker_can_be_left_out(tiny_models):
    loaded = load_pipeline(diffusion_spec(tiny_models, "refine", safety_checker=False))
    assert loaded.pipe.safety_checker is None and not loaded.pipe.config.requires_safety_checker


# ------------------------------------------------------------------ repos as they are published
@pytest.fixture(scope="module")
def inpainting_repo(tiny_models, tmp_path_factory):
    """A folder laid out like stable-diffusion-v1-5/stable-diffusion-inpainting: every component's
    full-precision weights as .bin only, beside NAME.fp16.safetensors; a safety checker and feature
    extractor listed in model_index.json."""
    root = tmp_path_factory.mktemp("hub")
    staged = root / "staged"
    shutil.copytree(tiny_models.inpaint, staged)
    add_safety_checker(staged)
    return publish_like_hub(staged, root / "stable-diffusion-inpainting", fp32="bin", variants=("fp16",))


@pytest.fixture(scope="module")
def controlnet_repo(tiny_models, tmp_path_factory):
    """A ControlNet laid out like lllyasviel/sd-controlnet-*: .bin and plain .safetensors, no fp16."""
    return publish_like_hub(tiny_models.controlnet, tmp_path_factory.mktemp("hub") / "sd-controlnet-seg",
                            fp32="both", variants=())


@pytest.fixture(scope="module")
def base_repo(tiny_models, tmp_path_factory):
    """A text-to-image pipeline like stable-diffusion-v1-5/stable-diffusion-v1-5 (.bin + fp16 safetensors)."""
    return publish_like_hub(tiny_models.base, tmp_path_factory.mktemp("hub") / "sd15", fp32="bin", variants=("fp16",))


def refuse_pickles(monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


def test_real_layout_files_are_where_the_hub_has_them(inpainting_repo, controlnet_repo):
    names = {p.relative_to(inpainting_repo).as_posix() for p in inpainting_repo.rglob("*") if p.is_file()}
    assert {"text_encoder/pytorch_model.bin", "text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.bin",
            "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
            "safety_checker/pytorch_model.bin", "safety_checker/model.fp16.safetensors",
            "feature_extractor/preprocessor_config.json"} <= names
    assert not any(n.endswith("model.safetensors") for n in names)  # no plain safetensors at all
    index = json.loads((inpainting_repo / "model_index.json").read_text())
    assert index["safety_checker"][1] == "StableDiffusionSafetyChecker" and "feature_extractor" in index
    assert {p.name for p in controlnet_repo.iterdir()} == {"config.json", "diffusion_pytorch_model.bin",
                                                          "diffusion_pytorch_model.safetensors"}


@pytest.mark.parametrize("safety_checker", [False, True])
def test_auto_variant_loads_the_fp16_safetensors_beside_the_bin(tiny_models, inpainting_repo, monkeypatch,
                                                               no_network, safety_checker):
    refuse_pickles(monkeypatch)
    loaded = load_pipeline(diffusion_spec(tiny_models, "inpaint-insert", model=str(inpainting_repo),
                                          safety_checker=safety_checker))
    assert loaded.variant == "fp16"
    assert loaded.dtype == torch.float32 and loaded.pipe.unet.dtype == torch.float32  # fp16 files, run as asked
    assert (loaded.pipe.safety_checker is not None) == safety_checker
    explicit = load_pipeline(diffusion_spec(tiny_models, "inpaint-insert", model=str(inpainting_repo), variant="fp16",
                                            safety_checker=safety_checker))
    assert explicit.model_hash == loaded.model_hash


def test_plain_files_only_on_an_fp16_repo_names_the_variant_found(tiny_models, inpainting_repo):
    with pytest.raises(VisionSynthError) as err:
        load_pipeline(diffusion_spec(tiny_models, "inpaint-insert", model=str(inpainting_repo), variant=None))
    message = str(err.value)
    assert "\n" not in message and "has no plain .safetensors weights" in message
    assert re.search(r"component (safety_checker|text_encoder) has no plain .safetensors weights \(found "
                     r"model.fp16.safetensors, pytorch_model.bin\); its safetensors come as variant fp16: "
                     r"set diffusion.variant \(fp16 or auto\)$", message)


def test_pipeline_and_controlnet_take_their_own_variants(tiny_models, base_repo, controlnet_repo, monkeypatch,
                                                         no_network):
    refuse_pickles(monkeypatch)
    spec = diffusion_spec(tiny_models, "layout-to-image", model=str(base_repo), variant="fp16",
                          controlnet=str(controlnet_repo))
    loaded = load_pipeline(spec)
    assert loaded.variant == "fp16" and loaded.controlnet_variant is None
    assert loaded.pipe.controlnet is not None


def test_two_variants_and_no_plain_files_ask_for_a_choice(tiny_models, tmp_path):
    repo = publish_like_hub(tiny_models.base, tmp_path / "two", fp32="bin", variants=("fp16", "bf16"))
    with pytest.raises(VisionSynthError, match=r"^diffusion.variant: auto found no plain .safetensors in component "
                                               r".*variants bf16, fp16 would all do: set diffusion.variant to one"):
        load_pipeline(diffusion_spec(tiny_models, "refine", model=str(repo)))


def test_download_hint_fetches_only_the_variant_used():
    patterns = include_patterns("pipeline", "fp16")
    assert "unet/*.fp16.safetensors" in patterns and "text_encoder/*.fp16.safetensors" in patterns
    assert not any("safety_checker" in p or p.endswith(".bin") for p in patterns)
    assert "safety_checker/*.fp16.safetensors" in include_patterns("pipeline", "fp16", safety_checker=True)
    message = missing_message("controlnet", "lllyasviel/sd-controlnet-seg", include_patterns("controlnet", None))
    assert ('`hf download lllyasviel/sd-controlnet-seg --include "config.json" '
            '"diffusion_pytorch_model.safetensors"`') in message


# ------------------------------------------------------------------ model and mode fit, before loading
def no_loading(monkeypatch):
    import diffusers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the compatibility check")

    for name in ("StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetPipeline",
                 "ControlNetModel"):
        monkeypatch.setattr(getattr(diffusers, name), "from_pretrained", refuse)


@pytest.mark.parametrize("mode, folder, message", [
    ("refine", "inpaint", r"its UNet takes 9 input channels \(an inpainting model\); mode refine needs a text-to-image "
                          r"model \(4 channels\)"),
    ("inpaint-insert", "base", r"its UNet takes 4 input channels \(a text-to-image model\); mode inpaint-insert needs "
                               r"an inpainting model \(9 channels\)"),
])
def test_unet_channels_must_fit_the_mode(tiny_models, monkeypatch, mode, folder, message):
    no_loading(monkeypatch)
    spec = diffusion_spec(tiny_models, mode, model=str(getattr(tiny_models, folder)))
    with pytest.raises(VisionSynthError, match=rf"^diffusion.model: .*{message}$"):
        load_pipeline(spec)


def test_sdxl_is_refused_before_loading(tiny_models, tmp_path, monkeypatch):
    no_loading(monkeypatch)
    folder = copy_model(tiny_models, "refine", tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionXLImg2ImgPipeline", text_encoder_2=["transformers", "CLIPTextModelWithProjection"])
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(VisionSynthError, match=r"is a Stable Diffusion XL pipeline \(StableDiffusionXLImg2ImgPipeline\); "
                                               r"mode refine runs StableDiffusionImg2ImgPipeline"):
        load_pipeline(diffusion_spec(tiny_models, "refine", model=str(folder)))


def test_controlnet_of_another_unet_is_refused(tiny_models, tmp_path, monkeypatch):
    no_loading(monkeypatch)
    folder = tmp_path / "controlnet"
    shutil.copytree(tiny_models.controlnet, folder)
    config = json.loads((folder / "config.json").read_text())
    config["cross_attention_dim"] = 768
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VisionSynthError, match=r"^diffusion.controlnet: .*cross_attention_dim 768, but .* has 32"):
        load_pipeline(diffusion_spec(tiny_models, "layout-to-image", controlnet=str(folder)))


# ------------------------------------------------------------------ dtype keyword from the public API
def test_dtype_keyword_comes_from_the_public_signature():
    from diffusers import DiffusionPipeline

    def explicit_old(path, torch_dtype=None):
        pass

    def explicit_new(path, dtype=None):
        pass

    def documented_old(path, **kwargs):
        """Parameters:
            torch_dtype (`torch.dtype`, *optional*): the dtype."""

    assert dtype_keyword(explicit_old) == "torch_dtype" and dtype_keyword(explicit_new) == "dtype"
    assert dtype_keyword(documented_old) == "torch_dtype"
    # diffusers 0.36+ documents `dtype` (and warns on torch_dtype)
    assert dtype_keyword(DiffusionPipeline.from_pretrained) == "dtype"


def test_loading_raises_no_deprecation_warning(tiny_models, no_network):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*torch_dtype.*")
        load_pipeline(diffusion_spec(tiny_models, "refine"))
