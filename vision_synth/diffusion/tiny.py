"""Tiny random-initialised Stable Diffusion models, saved as real diffusers folders.

For tests and `tools/bench_diffusion.py --tiny` only: they run 2 steps at 64×64 on a CPU in well
under a second and draw noise, not pictures. Shapes follow diffusers' own `get_dummy_components`
(block_out_channels (32, 64), cross_attention_dim 32); the VAE downsamples by 2, not 8. The
tokenizer comes from a small vocab.json + merges.txt folder (tests/assets/tiny_clip), so nothing
is downloaded. Weights come from a torch.Generator of vision_synth.seeding (stream TINY_STREAM, one
sub-stream per model), never from torch's global generator: models are built inside
torch.random.fork_rng (so building them leaves the global state as it was) and then initialised
again from that generator (`initialise`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Stable Diffusion 1.5's scheduler config (what its folder ships), so schedulers built from it
# with from_config behave as with the real model
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)


@dataclass(frozen=True)
class TinyModels:
    base: Path  # text-to-image pipeline folder (4-channel UNet): refine and layout-to-image
    inpaint: Path  # inpainting pipeline folder (9-channel UNet): inpaint-insert
    controlnet: Path  # ControlNet folder matching `base`

    def folder(self, mode: str) -> Path:
        return self.inpaint if mode == "inpaint-insert" else self.base


# seeding stream of the tiny models' weights: torch_generator_for(seed, TINY_STREAM, part)
TINY_STREAM = 0
UNET, VAE, TEXT_ENCODER, CONTROLNET, SAFETY_CHECKER = 1, 2, 3, 4, 5


def initialise(model, generator):
    """Draw every weight of `model` again from `generator`, with torch's default layer init
    (kaiming-uniform weights and uniform biases for Linear/Conv, N(0, 0.02) embeddings, norm
    layers as they are: ones and zeros), in the order of named_modules, so the weights depend on
    the generator's seed alone. Returns the model."""
    import math

    import torch

    with torch.no_grad():
        for _, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                torch.nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    torch.nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
    return model


def build_seeded(make, seed: int, part: int):
    """`make()` built without touching torch's global RNG, then initialised from (seed, part)."""
    import torch

    from vision_synth.seeding import torch_generator_for

    with torch.random.fork_rng(devices=[]):
        model = make()
    return initialise(model, torch_generator_for(seed, TINY_STREAM, part))


def tiny_unet(in_channels: int = 4, seed: int = 0):
    from diffusers import UNet2DConditionModel

    return build_seeded(lambda: UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8), seed, UNET)


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    return build_seeded(lambda: AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2), seed, VAE)


def tiny_tokenizer(tokenizer_dir: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=77)


def tiny_text_encoder(tokenizer, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=32)
    return build_seeded(lambda: CLIPTextModel(config), seed, TEXT_ENCODER)


def tiny_safety_checker(seed: int = 0):
    """A StableDiffusionSafetyChecker of CLIP shape with 32-wide layers (random: flags at random)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=680, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=32, patch_size=8),
        projection_dim=32)
    return build_seeded(lambda: StableDiffusionSafetyChecker(config), seed, SAFETY_CHECKER)


def tiny_feature_extractor():
    """The CLIP image processor of a safety checker, at the tiny checker's 32 px."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def sd_scheduler():
    from diffusers import PNDMScheduler

    return PNDMScheduler(**SD_SCHEDULER)


def tiny_components(tokenizer_dir: Path, in_channels: int = 4, seed: int = 0) -> dict:
    tokenizer = tiny_tokenizer(tokenizer_dir)
    return dict(unet=tiny_unet(in_channels, seed), vae=tiny_vae(seed), text_encoder=tiny_text_encoder(tokenizer, seed),
                tokenizer=tokenizer, scheduler=sd_scheduler(), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)


def tiny_controlnet(unet, seed: int = 0):
    import torch
    from diffusers import ControlNetModel

    from vision_synth.seeding import torch_generator_for

    # conditioning embedding downsamples the control image to latent size: by 2, like this VAE
    with torch.random.fork_rng(devices=[]):
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32),
                                               load_weights_from_unet=True)
    generator = torch_generator_for(seed, TINY_STREAM, CONTROLNET)
    initialise(controlnet.controlnet_cond_embedding, generator)  # built at random, not copied from the UNet
    with torch.no_grad():  # from_unet zero-initialises its output convolutions: give them weights
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.02, generator=generator)
    return controlnet


def save_tiny_models(root: Path, tokenizer_dir: Path, seed: int = 0) -> TinyModels:
    """Save the three tiny folders under `root` (safetensors) and return their paths."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    root = Path(root)
    base = StableDiffusionPipeline(**tiny_components(tokenizer_dir, 4, seed))
    base.save_pretrained(root / "base", safe_serialization=True)
    tiny_controlnet(base.unet, seed).save_pretrained(root / "controlnet", safe_serialization=True)
    inpaint = StableDiffusionInpaintPipeline(**tiny_components(tokenizer_dir, 9, seed))
    inpaint.save_pretrained(root / "inpaint", safe_serialization=True)
    return TinyModels(root / "base", root / "inpaint", root / "controlnet")
