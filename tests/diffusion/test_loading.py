"""Model loading: local folders and the HF cache only, safetensors only, real tokenizers, clear errors."""

import hashlib
import json
import re
import shutil

import pytest
import torch

from diffusion_helpers import TINY_CLIP, diffusion_spec
from vision_synth.diffusion.loading import (PIPELINE_CLASSES, choose_attention, is_offline, load_lora, load_pipeline,
                                            make_scheduler, pick_device, pipeline_files)
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
        load_pipeline(DiffusionSpec(mode="inpaint-insert", model="nobody/no-such-model"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("diffusion.model 'nobody/no-such-model': not found on this machine")
    assert "`hf download nobody/no-such-model`" in message and "save_pretrained" in message


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
