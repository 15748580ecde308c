"""The `diffusion:` section of a dataset config: which model, which mode, how fast, how checked.

Three modes, each drawing its layout (background, instance masks, categories) from the scene's
compositor for the same (seed, index):
- `inpaint-insert`: each category's instances are inpainted into their masks on a background
  (the scene's own, or one generated from `scene_prompt`); the label is the inpainted region.
- `layout-to-image`: the whole image from the layout with a ControlNet (segmentation or edge map).
- `refine`: img2img (SDEdit) of the composited scene at low `strength`; labels stay the layout's.
Every mode runs the label check of `check` (see vision_synth/diffusion/check.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vision_synth.spec import Spec

Mode = Literal["inpaint-insert", "layout-to-image", "refine"]
SchedulerName = Literal["dpmsolver++", "euler", "euler-ancestral", "ddim", "unipc"]

# strength used when the config gives none (layout-to-image starts from pure noise and has none)
DEFAULT_STRENGTH = {"inpaint-insert": 1.0, "refine": 0.3}


class PromptSpec(Spec):
    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    # colour of this category in the segmentation control map of layout-to-image; match the
    # palette the ControlNet was trained on (e.g. ADE20K's for sd-controlnet-seg). Default: a
    # fixed palette by category id.
    color: tuple[int, int, int] | None = None

    @model_validator(mode="after")
    def _color_in_range(self) -> PromptSpec:
        if self.color is not None and not all(0 <= c <= 255 for c in self.color):
            raise ValueError(f"color must be [r, g, b] with values 0..255, got {list(self.color)}")
        return self


class LoraSpec(Spec):
    """LoRA weights fused into the UNet (and text encoder) after loading; needs the peft package."""

    path: str = Field(min_length=1, description="hub id, folder, or .safetensors file")
    weight_name: str | None = Field(None, description="file inside a folder or hub repo")
    scale: float = Field(1.0, ge=0)


class CheckSpec(Spec):
    """The label check: per planned instance, how far the generated pixels agree with its mask.

    inpaint-insert: agreement = fraction of the mask whose pixels changed from the background
      (mean absolute RGB difference above max(min_difference, the 90th percentile of the
      difference in the ring around the mask)).
    refine: of the mask pixels that differed from the background before refining, the fraction
      that still differ after it (the object was not painted over).
    layout-to-image: how well the mask's and its ring's mean colours separate their pixels
      (true-positive plus true-negative rate minus 1, a nearest-mean classifier), 0 when the two
      means lie closer than min_difference.
    Instances below `min_agreement` are dropped (and, in inpaint-insert, their pixels restored).
    """

    min_agreement: float = Field(0.5, ge=0, le=1)
    min_difference: float = Field(12.0, ge=0, le=255, description="mean absolute RGB difference (0..255)")
    ring: int = Field(6, ge=1, le=256, description="width in pixels of the band around a mask")


class DiffusionSpec(Spec):
    mode: Mode
    # pipeline: a diffusers folder (model_index.json) or a hub id found in the local HF cache
    model: str = Field(min_length=1)
    variant: str | None = Field(None, description="weight file variant, e.g. fp16")
    controlnet: str | None = Field(None, description="ControlNet folder or hub id (layout-to-image)")
    control: Literal["segmentation", "edges"] = "segmentation"
    controlnet_scale: float = Field(1.0, ge=0)
    lora: LoraSpec | None = None

    # per category name: what to draw; scene_prompt: the whole image (layout-to-image, refine,
    # and the generated background of inpaint-insert); category prompts are appended to it
    prompts: dict[str, PromptSpec] = Field(default_factory=dict)
    scene_prompt: PromptSpec | None = None
    background: Literal["scene", "generated"] = "scene"

    steps: int = Field(25, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0)
    strength: float | None = Field(None, gt=0, le=1, description="default: 1.0 inpaint-insert, 0.3 refine")
    # grow the inpainting mask by this many pixels (default: one latent cell, the VAE's scale
    # factor) so small instances survive the mask's downscaling; pixels are kept only inside the
    # planned mask, so labels are unaffected
    mask_dilation: int | None = Field(None, ge=0, le=256)
    refine_masks: bool = Field(False, description="inpaint-insert: label = changed pixels inside the planned mask")
    check: CheckSpec = CheckSpec()

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description="auto: float16 on CUDA, float32 on CPU")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    scheduler: SchedulerName = "dpmsolver++"
    batch_size: int = Field(4, ge=1, le=256)
    attention: Literal["auto", "sdpa", "xformers"] = Field("auto", description="auto: xformers on CUDA when installed, else SDPA")
    channels_last: bool = Field(True, description="CUDA only")
    vae_slicing: bool = True
    vae_tiling: bool = False
    compile: bool = Field(False, description="torch.compile the UNet (and ControlNet)")
    safety_checker: bool = Field(True, description="run the pipeline's safety checker when it has one")
    offline: bool = Field(True, description="never download; HF_HUB_OFFLINE=1 forces it too")

    @model_validator(mode="after")
    def _mode_fits(self) -> DiffusionSpec:
        mode = self.mode
        if mode == "layout-to-image" and self.controlnet is None:
            raise ValueError("mode layout-to-image needs controlnet (a ControlNet folder or hub id)")
        if mode != "layout-to-image" and self.controlnet is not None:
            raise ValueError(f"controlnet applies to layout-to-image only, not {mode}")
        if mode == "layout-to-image" and self.strength is not None:
            raise ValueError("strength does not apply to layout-to-image (it starts from noise)")
        if self.refine_masks and mode != "inpaint-insert":
            raise ValueError(f"refine_masks applies to inpaint-insert only, not {mode}")
        if self.background == "generated" and mode != "inpaint-insert":
            raise ValueError(f"background: generated applies to inpaint-insert only, not {mode}")
        needs_scene_prompt = mode != "inpaint-insert" or self.background == "generated"
        if needs_scene_prompt and self.scene_prompt is None:
            what = "a generated background" if mode == "inpaint-insert" else f"mode {mode}"
            raise ValueError(f"{what} needs scene_prompt")
        if int(self.steps * self.effective_strength) < 1:
            raise ValueError(f"steps × strength must be at least 1 (img2img and inpainting run "
                             f"int(steps × strength) steps): {self.steps} × {self.effective_strength}")
        return self

    @property
    def effective_strength(self) -> float:
        return self.strength if self.strength is not None else DEFAULT_STRENGTH.get(self.mode, 1.0)
