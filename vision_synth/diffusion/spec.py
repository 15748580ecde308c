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

from vision_synth.spec import PathText, Spec

Mode = Literal["inpaint-insert", "layout-to-image", "refine"]
SchedulerName = Literal["dpmsolver++", "euler", "euler-ancestral", "ddim", "unipc"]

# strength used when the config gives none (layout-to-image starts from pure noise and has none)
DEFAULT_STRENGTH = {"inpaint-insert": 1.0, "refine": 0.3}


class PromptSpec(Spec):
    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    # the ADE20K class this category is drawn as in a segmentation control map (layout-to-image
    # with control: segmentation): a seg ControlNet knows the 150 ADE20K classes by their colours
    ade20k: str | None = Field(None, description="ADE20K class name, e.g. ball, bottle, box (see diffusion/ade20k.py)")

    @model_validator(mode="after")
    def _known_class(self) -> PromptSpec:
        _check_ade20k(self.ade20k, "ade20k")
        return self


def _check_ade20k(name: str | None, key: str) -> None:
    from vision_synth.diffusion.ade20k import ADE20K_CLASSES

    if name is not None and name not in ADE20K_CLASSES:
        close = [c for c in ADE20K_CLASSES if name.lower() in c or c in name.lower()][:5]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ValueError(f"{key}: {name!r} is not one of the 150 ADE20K classes{hint}")


class LoraSpec(Spec):
    """LoRA weights fused into the UNet (and text encoder) after loading; needs the peft package."""

    path: PathText = Field(min_length=1, description="hub id, folder, or .safetensors file")
    weight_name: str | None = Field(None, description="file inside a folder or hub repo")
    scale: float = Field(1.0, ge=0)


class SemanticSpec(Spec):
    """A per-instance semantic check with a local CLIP model: the instance's crop is scored against
    the prompts of every category; it is kept when its own category wins with at least
    `min_probability` (softmax over the categories)."""

    model: PathText = Field(min_length=1, description="CLIP folder (save_pretrained) or hub id in the local cache")
    min_probability: float = Field(0.5, ge=0, le=1)
    context: float = Field(0.25, ge=0, le=4, description="margin around the instance's box, as a fraction of its side")


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
    semantic: SemanticSpec | None = Field(None, description="optional: does each kept instance show its category?")


class DiffusionSpec(Spec):
    mode: Mode
    # pipeline: a diffusers folder (model_index.json) or a hub id found in the local HF cache
    model: PathText = Field(min_length=1)
    # weight variant of the pipeline's files (diffusion_pytorch_model.fp16.safetensors: fp16), or
    # auto: the plain .safetensors where a component has them, else the one safetensors variant there
    variant: str | None = Field("auto", description="auto, null (plain files only) or a variant, e.g. fp16")
    controlnet: PathText | None = Field(None, description="ControlNet folder or hub id (layout-to-image)")
    controlnet_variant: str | None = Field("auto", description="the ControlNet's own variant (auto, null or e.g. fp16)")
    control: Literal["segmentation", "canny"] = "segmentation"
    # segmentation maps: the ADE20K class drawn everywhere outside the instances (ADE20K has no
    # unlabelled colour; a seg ControlNet reads black as nothing it knows)
    control_background: str = Field("wall", description="ADE20K class of the space around the instances")
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
    # inpaint-insert: each instance is inpainted in a square crop around it (its box grown by
    # `crop_context` times its longest side on each side), resized to the model's resolution, and
    # pasted back inside its mask with edges feathered over `feather` pixels
    crop_context: float = Field(1.0, ge=0, le=16)
    feather: int = Field(2, ge=0, le=64, description="pixels over which a pasted instance fades in from its edge")
    # a job whose image the safety checker flags, or whose decode is NaN/Inf even with the VAE in
    # float32, is drawn again with the next seed of its own stream, at most this many times
    max_redraws: int = Field(2, ge=0, le=16)
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
        _check_ade20k(self.control_background, "control_background")
        if mode == "layout-to-image" and self.control == "segmentation":
            unmapped = [n for n, p in self.prompts.items() if p.ade20k is None]
            if unmapped:
                raise ValueError(f"control: segmentation draws each category as an ADE20K class: set prompts.<name>.ade20k "
                                 f"for {', '.join(unmapped)}")
        if self.controlnet is None and self.controlnet_variant != "auto":
            raise ValueError("controlnet_variant applies with a controlnet only")
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
