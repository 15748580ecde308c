"""Tiny random-initialised Stable Diffusion models, saved as real diffusers folders.

For tests and `tools/bench_diffusion.py --tiny` only: they run 2 steps at 64×64 on a CPU in well
under a second and draw noise, not pictures. Shapes follow diffusers' own `get_dummy_components`
(block_out_channels (32, 64), cross_attention_dim 32); the VAE downsamples by 2, not 8. The
tokenizer comes from a small vocab.json + merges.txt folder (tests/assets/tiny_clip), so nothing
is downloaded.
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


def tiny_unet(in_channels: int = 4, seed: int = 0):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8)


def tiny_vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)


def tiny_tokenizer(tokenizer_dir: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=77)


def tiny_text_encoder(tokenizer, seed: int = 0):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=32)
    return CLIPTextModel(config)


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

    torch.manual_seed(seed)
    # conditioning embedding downsamples the control image to latent size: by 2, like this VAE
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32), load_weights_from_unet=True)
    with torch.no_grad():  # from_unet zero-initialises its output convolutions: give them weights
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.02)
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
