"""Images per second of a diffusion pipeline: a plain diffusers loop against vision_synth's settings.

  python tools/bench_diffusion.py --model PATH_OR_HUB_ID [--mode inpaint-insert] [--controlnet PATH]
  python tools/bench_diffusion.py --random-sd15   # SD 1.5-sized random weights: GPU speed, no download
  python tools/bench_diffusion.py --tiny          # tiny random CPU model: checks that the script runs

Three arms, all with the same scheduler (DPM-Solver++ from the model's own scheduler config), the
same number of steps, the same attention kernel stated explicitly (PyTorch SDPA,
set_attn_processor(AttnProcessor2_0())), the same prompts, masks and size:
naive:        the mode's pipeline from from_pretrained, float32, one image per call.
fp16 batch 1: the same plain pipeline in float16 (the usual baseline on a GPU; on a CPU float32,
              so the arm then only repeats naive), one image per call.
ours:         vision_synth.diffusion.loading.load_pipeline (float16 on CUDA, channels_last, VAE
              slicing, torch.compile with --compile) called through vision_synth's own call path,
              --batch-size images per call, one torch.Generator each; the last batch is padded
              to the same size (padding rows are not counted), so a compiled UNet sees one shape.
Warm-up calls (and compilation) are not timed; the device is synchronized before and after each
timed run. Only the diffusion call is timed (no layout, no check, no writing): it is what
dominates a diffusion run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = ["a scratch on brushed metal", "a rusty stain on painted steel", "a crack in cast metal",
           "a dent in a shiny metal surface"]
NEGATIVE = "blurry, low quality"

# Stable Diffusion 1.5's model configs (runwayml/stable-diffusion-v1-5: unet/, vae/ and the
# text encoder of openai/clip-vit-large-patch14), so a random model of the real size can be built
SD15_UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), center_input_sample=False,
    cross_attention_dim=768, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                "DownBlock2D"),
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2,
    mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
SD15_VAE = dict(
    act_fn="silu", block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3, sample_size=512,
    up_block_types=("UpDecoderBlock2D",) * 4)
CLIP_VIT_L14_TEXT = dict(
    hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
    max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, layer_norm_eps=1e-5)


def random_sd15(root: Path, mode: str, device) -> tuple[Path, Path | None]:
    """Save a random-initialised model of SD 1.5's size (float16 on disk) and return its folders.

    The text encoder keeps ViT-L/14's shape but the tiny test vocabulary (680 tokens instead of
    49408: the real vocab.json is a download); that changes one embedding table, not the speed.
    """
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vision_synth.diffusion.tiny import sd_scheduler, tiny_tokenizer

    tokenizer = tiny_tokenizer(REPO / "tests" / "assets" / "tiny_clip")
    from vision_synth.diffusion.tiny import initialise
    from vision_synth.seeding import torch_generator_for

    with torch.device(device), torch.random.fork_rng(devices=[]):
        unet = UNet2DConditionModel(**{**SD15_UNET, "in_channels": 9 if mode == "inpaint-insert" else 4})
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **CLIP_VIT_L14_TEXT, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    for part, model in enumerate((unet, vae, text_encoder)):  # weights from vision_synth.seeding, not torch's global RNG
        initialise(model, torch_generator_for(0, 1, part, device=str(torch.device(device).type)))
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=sd_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False).to(torch.float16)
    pipe.save_pretrained(root / "sd15", safe_serialization=True)
    controlnet = None
    if mode == "layout-to-image":
        ControlNetModel.from_unet(pipe.unet).to(torch.float16).save_pretrained(root / "controlnet",
                                                                               safe_serialization=True)
        controlnet = root / "controlnet"
    del pipe, unet, vae, text_encoder
    gc.collect()
    return root / "sd15", controlnet


def make_jobs(count: int, size: int, mode: str):
    """The same inputs for both runs: prompts, a background, a rectangle mask, a control map."""
    from vision_synth.diffusion.generator import Job
    from vision_synth.seeding import rng_for

    jobs = []
    for i in range(count):
        rng = rng_for(0, i)
        image = (rng.random((size, size, 3)) * 80 + 90).astype(np.uint8)
        mask = np.zeros((size, size), bool)
        y, x = rng.integers(0, size // 2, 2)
        mask[y : y + size // 3, x : x + size // 3] = True
        control = np.zeros((size, size, 3), np.uint8)
        control[mask] = (255, 127, 14)
        jobs.append(Job(i, 1, PROMPTS[i % len(PROMPTS)], NEGATIVE, image=image, mask=mask, control=control))
    return jobs


def naive_arguments(mode: str, job, size: int, steps: int) -> dict:
    args = dict(prompt=job.prompt, negative_prompt=job.negative_prompt, num_inference_steps=steps, height=size,
                width=size, generator=job.generator(0), output_type="np")  # the noise of ours, for this job
    if mode == "inpaint-insert":
        args.update(image=job.image.astype(np.float32)[None] / 255, mask_image=job.mask.astype(np.float32)[None, ..., None],
                    strength=1.0)
    elif mode == "refine":
        args.update(image=job.image.astype(np.float32)[None] / 255, strength=1.0)
    else:
        args.update(image=job.control.astype(np.float32)[None] / 255)
    return args


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_pipeline(folder: Path, controlnet: Path | None, mode: str, dtype, device, scheduler: str,
                   variants: tuple[str | None, str | None]):
    """The mode's diffusers pipeline as from_pretrained makes it, with the benchmark's scheduler
    and SDPA set explicitly (diffusers' default processor is SDPA on torch 2 too: stated, not assumed)."""
    import diffusers
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vision_synth.diffusion.loading import PIPELINE_CLASSES, denoisers, dtype_argument, make_scheduler

    extra = {}
    if controlnet is not None:
        extra["controlnet"] = diffusers.ControlNetModel.from_pretrained(
            controlnet, use_safetensors=True, local_files_only=True, variant=variants[1],
            **dtype_argument(dtype, diffusers.ControlNetModel.from_pretrained))
    cls = getattr(diffusers, PIPELINE_CLASSES[mode])
    pipe = cls.from_pretrained(folder, use_safetensors=True, local_files_only=True, variant=variants[0],
                               **dtype_argument(dtype, cls.from_pretrained), safety_checker=None,
                               feature_extractor=None, requires_safety_checker=False, **extra)
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    for model in denoisers(pipe):
        model.set_attn_processor(AttnProcessor2_0())
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bench_plain(name: str, folder: Path, controlnet: Path | None, mode: str, jobs, size: int, steps: int, dtype,
                device, scheduler: str, variants) -> tuple[float, str]:
    """One image per call through the plain pipeline."""
    import torch

    pipe = plain_pipeline(folder, controlnet, mode, dtype, device, scheduler, variants)
    with torch.inference_mode():
        pipe(**naive_arguments(mode, jobs[0], size, steps))  # warm-up
        sync(device)
        start = time.perf_counter()
        for job in jobs:
            pipe(**naive_arguments(mode, job, size, steps))
        sync(device)
        seconds = time.perf_counter() - start
    detail = (f"batch 1, {str(dtype).replace('torch.', '')}, {type(pipe.scheduler).__name__}, {steps} steps, "
              f"sdpa")
    del pipe
    gc.collect()
    return len(jobs) / seconds, detail


def padded_batches(jobs: list, batch: int) -> list[tuple[list, int]]:
    """(jobs of one call, how many of them count): every call `batch` rows, the last one padded
    with copies of its last job, so a compiled UNet is called with one shape only."""
    out = []
    for first in range(0, len(jobs), batch):
        rows = jobs[first : first + batch]
        out.append((rows + [rows[-1]] * (batch - len(rows)), len(rows)))
    return out


def bench_ours(folder: Path, controlnet: Path | None, mode: str, jobs, size: int, steps: int, batch: int,
               compile_unet: bool, dtype: str, device, scheduler: str, variants) -> tuple[float, str]:
    from vision_synth.diffusion.generator import call_pipeline
    from vision_synth.diffusion.loading import load_pipeline
    from vision_synth.diffusion.spec import DiffusionSpec

    spec = DiffusionSpec(
        mode=mode, model=str(folder), controlnet=str(controlnet) if controlnet else None, steps=steps,
        strength=None if mode == "layout-to-image" else 1.0, batch_size=batch, compile=compile_unet, dtype=dtype,
        device=device.type, safety_checker=False, scheduler=scheduler, attention="sdpa", variant=variants[0],
        controlnet_variant=variants[1] if controlnet else "auto", control="canny",
        scene_prompt={"prompt": PROMPTS[0]} if mode != "inpaint-insert" else None)
    loaded = load_pipeline(spec)
    strength = spec.effective_strength if mode != "layout-to-image" else None
    calls = padded_batches(jobs, batch)
    call_pipeline(loaded.pipe, spec, calls[0][0], 0, size, size, strength)  # warm-up (and compilation)
    sync(loaded.device)
    start = time.perf_counter()
    counted = 0
    for rows, n in calls:
        call_pipeline(loaded.pipe, spec, rows, 0, size, size, strength)
        counted += n
    sync(loaded.device)
    seconds = time.perf_counter() - start
    dtype_name = str(loaded.dtype).replace("torch.", "")
    detail = (f"batch {batch}, {dtype_name}, {type(loaded.pipe.scheduler).__name__}, {steps} steps, {loaded.attention}"
              f"{', compile' if compile_unet else ''}, padded")
    return counted / seconds, detail


def quiet() -> None:
    """Only the figures on the terminal: no loading bars, warnings or deprecation notes."""
    import huggingface_hub.utils
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore")
    huggingface_hub.utils.disable_progress_bars()
    for logging in (diffusers_logging, transformers_logging):
        logging.disable_progress_bar()
        logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="diffusers pipeline folder or hub id (in the local cache)")
    which.add_argument("--random-sd15", action="store_true", help="random weights of SD 1.5's size")
    which.add_argument("--tiny", action="store_true", help="tiny random model on CPU, 64×64 (tests the script)")
    parser.add_argument("--controlnet", help="ControlNet folder or hub id (with --model, mode layout-to-image)")
    parser.add_argument("--mode", default="inpaint-insert", choices=["inpaint-insert", "layout-to-image", "refine"])
    parser.add_argument("--size", type=int, default=None, help="image side (default 512; 64 with --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 2 with --tiny)")
    parser.add_argument("--images", type=int, default=None, help="images timed per run (default 16; 4 with --tiny)")
    parser.add_argument("--batch-size", type=int, default=None, help="ours: images per call (default 8; 2 with --tiny)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                        help="default: cpu with --tiny, else auto (CUDA when present)")
    parser.add_argument("--variant", default="auto", help="weight variant of the pipeline (auto, none, fp16, ...)")
    parser.add_argument("--controlnet-variant", default="auto", help="weight variant of the ControlNet")
    parser.add_argument("--scheduler", default="dpmsolver++", help="the scheduler of every arm")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the UNet in ours (default: on with CUDA)")
    args = parser.parse_args(argv)

    import torch

    from vision_synth.diffusion.loading import pick_device

    quiet()
    tiny = args.tiny
    size = args.size or (64 if tiny else 512)
    steps = args.steps or (2 if tiny else 25)
    count = args.images or (4 if tiny else 16)
    batch = args.batch_size or (2 if tiny else 8)
    device = pick_device(args.device or ("cpu" if tiny else "auto"))
    compile_unet = args.compile if args.compile is not None else device.type == "cuda"
    if args.mode == "layout-to-image" and args.model and not args.controlnet:
        parser.error("--mode layout-to-image with --model needs --controlnet")

    with tempfile.TemporaryDirectory(prefix="bench_diffusion_") as tmp:
        controlnet = Path(args.controlnet) if args.controlnet else None
        if tiny:
            from vision_synth.diffusion.tiny import save_tiny_models

            models = save_tiny_models(Path(tmp), REPO / "tests" / "assets" / "tiny_clip")
            folder, controlnet, name = models.folder(args.mode), models.controlnet, "tiny random (tests)"
            if args.mode != "layout-to-image":
                controlnet = None
        elif args.random_sd15:
            folder, controlnet = random_sd15(Path(tmp), args.mode, device)
            name = "random SD 1.5 size"
        else:
            from vision_synth.diffusion.loading import is_offline, resolve_folder

            folder = resolve_folder("pipeline", args.model, is_offline(True), args.variant)
            if controlnet is not None:
                controlnet = resolve_folder("controlnet", args.controlnet, is_offline(True), args.controlnet_variant)
            name = args.model
        gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        print(f"model: {name}  mode: {args.mode}  size: {size}×{size}  steps: {steps}  images: {count}  "
              f"device: {device.type}{gpu}", flush=True)
        jobs = make_jobs(count, size, args.mode)
        from vision_synth.diffusion.loading import choose_variant, model_components

        variants = (None if args.variant == "none" else args.variant,
                    None if args.controlnet_variant == "none" else args.controlnet_variant)
        resolved = (choose_variant({c: folder / c for c in model_components(folder, ("safety_checker", "feature_extractor"))},
                                   variants[0], "--variant"),
                    choose_variant({"controlnet": controlnet}, variants[1], "--controlnet-variant") if controlnet else None)
        half = torch.float16 if device.type == "cuda" else torch.float32
        naive, naive_detail = bench_plain("naive", folder, controlnet, args.mode, jobs, size, steps, torch.float32,
                                          device, args.scheduler, resolved)
        print(f"naive: {naive:.3f} images/s  ({naive_detail})", flush=True)
        base, base_detail = bench_plain("fp16 batch 1", folder, controlnet, args.mode, jobs, size, steps, half,
                                        device, args.scheduler, resolved)
        print(f"fp16 batch 1: {base:.3f} images/s  ({base_detail})", flush=True)
        ours, ours_detail = bench_ours(folder, controlnet, args.mode, jobs, size, steps, batch, compile_unet,
                                       args.dtype, device, args.scheduler, variants)
        print(f"ours: {ours:.3f} images/s  ({ours_detail})", flush=True)
        print(f"speedup: {ours / naive:.2f}x over naive, {ours / base:.2f}x over fp16 batch 1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
