"""DiffusionGenerator: samples whose pixels come from a diffusers pipeline and whose labels come from
the layout the scene's compositor planned for the same (seed, index), checked against the pixels.

Each mode turns layouts into pipeline jobs (one image each), runs them in batches, and finishes
every sample from its job results: `_jobs → run → _finish`. A job's noise comes from its own
torch.Generator (seed, index, job number), so a sample does not depend on which other samples share
its batch. On CPU the pipeline is still called one job at a time: BLAS and oneDNN choose kernels
by batch size, so a batch of 3 differs from three batches of 1 by float rounding (~1e-6), and
batching buys nothing there. On CUDA jobs are batched (`batch_size`); cuBLAS/cuDNN also choose
kernels by shape, so there outputs match across batch makeups only up to that rounding.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vision_synth.diffusion import check as checks
from vision_synth.diffusion import crops
from vision_synth.diffusion.ade20k import ade20k_color
from vision_synth.diffusion.layout import Layout, canny_map, category_colors, segmentation_map
from vision_synth.diffusion.loading import load_pipeline
from vision_synth.errors import ConfigError
from vision_synth.seeding import torch_generator_for
from vision_synth.types import Instances, Provenance, Sample

# torch generator of job j of sample i: torch_generator_for(seed, i, NOISE_STREAM, j), and for its
# r-th redraw torch_generator_for(seed, i, NOISE_STREAM, j, r); the compositor's numpy generator is
# rng_for(seed, i), a different stream
NOISE_STREAM = 1
# job number of a generated background; the job of planned instance k is number k + 1
BACKGROUND_JOB = 0


@dataclass(frozen=True, eq=False)
class Job:
    """One image to generate: one row of a pipeline call."""

    index: int  # the sample's index
    number: int  # the job's number within its sample; picks its noise
    prompt: str
    negative_prompt: str
    image: np.ndarray | None = None  # H×W×3 uint8 start image (inpaint, refine)
    mask: np.ndarray | None = None  # H×W bool region to inpaint
    control: np.ndarray | None = None  # H×W×3 uint8 ControlNet condition
    redraw: int = 0  # 0: the first draw; r: the r-th redraw, with the next seed of the job's stream

    def generator(self, seed: int):
        redraw = (self.redraw,) if self.redraw else ()
        return torch_generator_for(seed, self.index, NOISE_STREAM, self.number, *redraw)


@dataclass(frozen=True, eq=False)
class JobResult:
    """What a job made: an image, or none when every draw failed (`failure`)."""

    image: np.ndarray | None  # H×W×3 uint8; None when failure is set
    failure: str | None = None  # None, "flagged" (the safety checker) or "nan" (non-finite decode)
    redraws: int = 0  # draws made again after a flagged or non-finite one
    upcast: bool = False  # decoded again with the VAE in float32 (non-finite in its own dtype)


@dataclass
class CheckCounts:
    """Planned instances and what became of them: planned = kept + rejected + flagged + nan
    (flagged: the safety checker flagged every draw; nan: no draw decoded to finite pixels).
    `unchecked` counts kept instances the check could not measure; `redrawn` and `upcast` count
    jobs drawn again or decoded again in float32; `skipped` counts samples not written at all."""

    planned: int = 0
    kept: int = 0
    rejected: int = 0
    flagged: int = 0
    nan: int = 0
    unchecked: int = 0
    redrawn: int = 0
    upcast: int = 0
    skipped: int = 0

    def add(self, other: CheckCounts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def of(cls, agreement: np.ndarray, keep: np.ndarray, failure: np.ndarray, results=()) -> CheckCounts:
        """`failure`: per instance "", "flagged" or "nan"; `results`: the sample's JobResults."""
        failed = failure != ""
        return cls(planned=len(keep), kept=int(keep.sum()), rejected=int((~keep & ~failed).sum()),
                   flagged=int((failure == "flagged").sum()), nan=int((failure == "nan").sum()),
                   unchecked=int((keep & np.isnan(agreement)).sum()),
                   redrawn=sum(r.redraws for r in results), upcast=sum(r.upcast for r in results))

    def stage(self) -> str:
        """The provenance stage that carries the counts into annotations.json (and the card)."""
        return (f"diffusion-check:kept={self.kept},rejected={self.rejected},flagged={self.flagged},"
                f"nan={self.nan},redrawn={self.redrawn},upcast={self.upcast}")


@dataclass(frozen=True, eq=False)
class GeneratedSample:
    sample: Sample | None  # None: skipped (its whole image failed every draw; see counts)
    layout: Layout  # what was planned
    kept: np.ndarray  # indices into layout.instances of sample.instances, in order
    agreement: np.ndarray  # per planned instance; NaN where not measurable
    counts: CheckCounts


class DiffusionGenerator:
    """The generator protocol of the runner (`batch_size`, `samples(indices)`) over a diffusers
    pipeline. Loads and checks the model when built, before anything is written."""

    def __init__(self, config, jobs_per_call: int | None = None, show_progress: bool = True) -> None:
        from vision_synth.scene.compositor import Compositor

        spec = getattr(config, "diffusion", None)
        if spec is None:
            raise ConfigError("generator: diffusion needs a `diffusion:` section (see configs/diffusion_*.yaml)")
        self.config, self.spec = config, spec
        self.names = {c.id: c.name for c in config.categories}
        self._check_prompts()
        self.compositor = Compositor(config, show_progress=show_progress)
        self.loaded = load_pipeline(spec)
        self.height, self.width = config.image.height, config.image.width
        self._check_image_size()
        self.batch_size = spec.batch_size
        cuda = self.loaded.device.type == "cuda"
        self.jobs_per_call = jobs_per_call or (spec.batch_size if cuda else 1)
        pipe = self.loaded.pipe
        self.dilation = spec.mask_dilation if spec.mask_dilation is not None else int(pipe.vae_scale_factor)
        # the side the model was trained at (SD 1.5: 64 latent cells × 8 = 512); crops go to it
        self.resolution = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        ids = {c.name: c.id for c in config.categories}
        self.colors = category_colors({ids[n]: p.ade20k for n, p in spec.prompts.items() if p.ade20k})
        self.control_background = ade20k_color(spec.control_background)
        self.semantic = None
        if spec.check.semantic is not None:
            from vision_synth.diffusion.semantic import SemanticCheck

            self.semantic = SemanticCheck(spec.check.semantic, {c: spec.prompts[n].prompt for c, n in self.names.items()
                                                                if n in spec.prompts}, offline=spec.offline)
        self.provenance = Provenance(generator=f"diffusion:{spec.mode}", model=self.loaded.model,
                                     model_hash=self.loaded.model_hash)
        self.counts = CheckCounts()  # totals over every sample generated by this object

    # ------------------------------------------------------------------------------ checks
    def _check_prompts(self) -> None:
        spec, known = self.spec, set(self.names.values())
        for name in spec.prompts:
            if name not in known:
                raise ConfigError(f"diffusion.prompts: unknown category {name!r} (categories: {', '.join(self.names.values())})")
        if spec.mode in ("inpaint-insert", "layout-to-image"):
            for name in self.config.scene.category_names:
                if name not in spec.prompts:
                    raise ConfigError(f"diffusion.prompts: no prompt for category {name!r} ({spec.mode} draws "
                                      "every category from its prompt)")

    def _check_image_size(self) -> None:
        # inpaint-insert works in resized crops (any size), except for a generated background
        if self.spec.mode == "inpaint-insert" and self.spec.background == "scene":
            return
        factor = int(self.loaded.pipe.vae_scale_factor)
        if self.height % factor or self.width % factor:
            raise ConfigError(f"image: width and height must be multiples of {factor} for {self.loaded.model} "
                              f"(got {self.width}×{self.height})")

    # ----------------------------------------------------------------------------- protocol
    def samples(self, indices: list[int]) -> list[Sample]:
        """The samples of `indices` that could be made (a skipped one is counted in `counts`)."""
        return [g.sample for g in self.generate(indices) if g.sample is not None]

    def generate(self, indices: list[int]) -> list[GeneratedSample]:
        """Samples `indices` with what was planned and what the check made of it."""
        layouts = [self.compositor.layout(i) for i in indices]
        modes = {"inpaint-insert": self._inpaint_insert, "layout-to-image": self._layout_to_image,
                 "refine": self._refine}
        results = modes[self.spec.mode](layouts)
        for r in results:
            self.counts.add(r.counts)
        return results

    # -------------------------------------------------------------------------------- modes
    def _inpaint_insert(self, layouts: list[Layout]) -> list[GeneratedSample]:
        spec = self.spec
        backgrounds: list[np.ndarray | None] = [layout.background for layout in layouts]
        background_results: list[JobResult | None] = [None] * len(layouts)
        if spec.background == "generated":
            whole = np.ones((self.height, self.width), bool)
            prompt, negative = self._scene_prompt([])
            jobs = [Job(l.index, BACKGROUND_JOB, prompt, negative, image=l.background, mask=whole) for l in layouts]
            background_results = self.run(jobs, strength=1.0)
            backgrounds = [r.image for r in background_results]
        jobs, owners, windows = [], [], []
        for s, (layout, background) in enumerate(zip(layouts, backgrounds)):
            if background is None:
                continue
            inst = layout.instances
            for k, (mask, cat) in enumerate(zip(inst.masks, inst.category_ids)):
                window = crops.crop_window(mask, spec.crop_context)
                side = self.resolution
                region = checks.dilate(crops.resize_mask(window.of(mask), side), self.dilation)
                p = spec.prompts[self.names[int(cat)]]
                jobs.append(Job(layout.index, k + 1, p.prompt, p.negative_prompt,
                                image=crops.resize_image(window.of(background), side), mask=region))
                owners.append((s, k))
                windows.append(window)
        per_sample: dict[int, dict[int, tuple[JobResult, crops.Window, np.ndarray]]] = defaultdict(dict)
        for (s, k), window, job, result in zip(owners, windows, jobs,
                                               self.run(jobs, spec.effective_strength, self.resolution)):
            per_sample[s][k] = (result, window, job.mask)
        out = []
        for s, layout in enumerate(layouts):
            if backgrounds[s] is None:
                out.append(self._skipped(layout, background_results[s]))
            else:
                out.append(self._finish_inpaint(layout, backgrounds[s], background_results[s], per_sample[s]))
        return out

    def _finish_inpaint(self, layout: Layout, background: np.ndarray, background_result: JobResult | None,
                        results: dict[int, tuple[JobResult, crops.Window, np.ndarray]]) -> GeneratedSample:
        """Paste each instance's generated crop back, feathered inside its planned mask only, check
        it against the noise floor of its raw crop, restore the background under instances dropped."""
        spec, inst = self.spec, layout.instances
        image = background.copy()
        raws = np.repeat(background[None], len(inst), axis=0)  # per instance: what the model made
        painted, within = np.zeros_like(inst.masks), np.zeros_like(inst.masks)  # asked to paint; its crop
        failure = np.full(len(inst), "", dtype=object)
        for k, mask in enumerate(inst.masks):
            result, window, region = results[k]
            window.of(painted[k])[:] = crops.resize_mask(region, window.side)
            window.of(within[k])[:] = True
            if result.image is None:
                failure[k] = result.failure
                continue
            window.of(raws[k])[:] = crops.resize_image(result.image, window.side)
            image = crops.paste_feathered(image, raws[k], mask, spec.feather)
        bands = checks.floor_bands(painted, within, spec.check.ring)
        agreement, changed = checks.inserted_agreement(image, background, inst.masks, spec.check.min_difference,
                                                       spec.check.ring, raws, bands)
        masks = inst.masks
        if spec.refine_masks:
            masks = checks.refine_masks(changed, inst.masks)
            agreement = np.where(np.isnan(agreement), np.nan, checks.covered_fraction(masks, inst.masks))
        keep = checks.judge(agreement, spec.check.min_agreement, masks).keep & (failure == "")
        keep = self._semantic(image, masks, inst.category_ids, keep)
        for k in np.flatnonzero(~keep):
            image[inst.masks[k]] = background[inst.masks[k]]
        names = [self.names[int(c)] for c in np.unique(inst.category_ids)]
        prompt = "; ".join(f"{n}: {spec.prompts[n].prompt}" for n in names)
        if spec.background == "generated":
            prompt = f"background: {spec.scene_prompt.prompt}" + (f"; {prompt}" if prompt else "")
        job_results = [r for r, _, _ in results.values()] + ([background_result] if background_result else [])
        return self._finish(layout, image, masks, keep, agreement, failure, prompt, "diffusion", job_results)

    def _layout_to_image(self, layouts: list[Layout]) -> list[GeneratedSample]:
        jobs = [Job(l.index, 0, *self._scene_prompt(l.instances.category_ids), control=self._control(l))
                for l in layouts]
        out = []
        for layout, job, result in zip(layouts, jobs, self.run(jobs)):
            if result.image is None:
                out.append(self._skipped(layout, result))
                continue
            masks = layout.instances.masks
            agreement = checks.separated_agreement(result.image, masks, self.spec.check.min_difference,
                                                   self.spec.check.ring)
            out.append(self._judged(layout, result, masks, agreement, job.prompt, source="diffusion"))
        return out

    def _refine(self, layouts: list[Layout]) -> list[GeneratedSample]:
        jobs = [Job(l.index, 0, *self._scene_prompt(l.instances.category_ids), image=l.composite) for l in layouts]
        out = []
        for layout, job, result in zip(layouts, jobs, self.run(jobs, self.spec.effective_strength)):
            if result.image is None:
                out.append(self._skipped(layout, result))
                continue
            masks = layout.instances.masks
            agreement = checks.retained_agreement(result.image, layout.composite, layout.background, masks,
                                                  self.spec.check.min_difference, self.spec.check.ring)
            out.append(self._judged(layout, result, masks, agreement, job.prompt, source=None))
        return out

    def _judged(self, layout, result: JobResult, masks, agreement, prompt: str, source) -> GeneratedSample:
        keep = checks.judge(agreement, self.spec.check.min_agreement, masks).keep
        keep = self._semantic(result.image, masks, layout.instances.category_ids, keep)
        failure = np.full(len(masks), "", dtype=object)
        return self._finish(layout, result.image, masks, keep, agreement, failure, prompt, source, [result])

    def _semantic(self, image, masks, category_ids, keep) -> np.ndarray:
        if self.semantic is None or not keep.any():
            return keep
        return keep & self.semantic.agrees(image, masks, category_ids, keep)

    def _skipped(self, layout: Layout, result: JobResult) -> GeneratedSample:
        """A sample whose whole image failed every draw: not written, its instances counted."""
        n = len(layout.instances)
        failure = np.full(n, result.failure, dtype=object)
        counts = CheckCounts.of(np.full(n, np.nan), np.zeros(n, bool), failure, [result])
        counts.skipped = 1
        return GeneratedSample(None, layout, np.zeros(0, int), np.full(n, np.nan), counts)

    def _finish(self, layout: Layout, image, masks, keep, agreement, failure, prompt: str,
                source: str | None, results) -> GeneratedSample:
        inst = layout.instances
        attrs = {k: v[keep] for k, v in inst.attributes.items()}
        if source is not None:
            attrs["source"] = np.full(int(keep.sum()), source, dtype=object)
        attrs["agreement"] = agreement[keep].astype(np.float32)
        amodal = inst.amodal_masks[keep] if inst.amodal_masks is not None and self.spec.mode == "refine" else None
        instances = Instances(masks[keep], inst.category_ids[keep], amodal, attrs)
        counts = CheckCounts.of(agreement, keep, failure, results)
        provenance = dataclasses.replace(self.provenance, prompt=prompt, background=self._background_name(layout),
                                         stages=(counts.stage(),))
        sample = Sample(index=layout.index, seed=layout.seed, image=image, instances=instances, provenance=provenance)
        return GeneratedSample(sample, layout, np.flatnonzero(keep), agreement, counts)

    # ------------------------------------------------------------------------------ helpers
    def _background_name(self, layout: Layout) -> str | None:
        """What the image was painted on: the scene's background, or one diffusion generated."""
        generated = self.spec.mode == "layout-to-image" or self.spec.background == "generated"
        return "generated" if generated else layout.background_name

    def _scene_prompt(self, category_ids) -> tuple[str, str]:
        """scene_prompt followed by the prompts of the categories present (each once, by id)."""
        spec = self.spec
        parts = [spec.scene_prompt] + [spec.prompts.get(self.names[int(c)]) for c in np.unique(category_ids)]
        parts = [p for p in parts if p is not None]
        prompt = ", ".join(p.prompt for p in parts)
        negative = ", ".join(p.negative_prompt for p in parts if p.negative_prompt)
        return prompt, negative

    def _control(self, layout: Layout) -> np.ndarray:
        if self.spec.control == "canny":
            return canny_map(layout.composite)
        return segmentation_map(layout.instances, self.colors, self.control_background)

    # ---------------------------------------------------------------------------- pipeline
    def run(self, jobs: list[Job], strength: float | None = None, size: int | None = None) -> list[JobResult]:
        """Results of `jobs`, in order, `jobs_per_call` per pipeline call, at `size`² (default the
        image's size); flagged or non-finite draws drawn again (see run_jobs)."""
        height, width = (size, size) if size else (self.height, self.width)
        return run_jobs(self.loaded.pipe, self.spec, jobs, self.config.seed, height, width, strength,
                        self.jobs_per_call)


def run_jobs(pipe, spec, jobs: list[Job], seed: int, height: int, width: int, strength: float | None,
             jobs_per_call: int) -> list[JobResult]:
    """Every job's result, in order. A draw the safety checker flags, or that decodes to NaN/Inf
    even with the VAE in float32, is drawn again with the next seed of its own stream (up to
    `spec.max_redraws` times); a job that fails every draw has no image and says why."""
    results: list[JobResult | None] = [None] * len(jobs)
    todo, redraws, upcast = list(range(len(jobs))), [0] * len(jobs), [False] * len(jobs)
    for redraw in range(spec.max_redraws + 1):
        draws = [dataclasses.replace(jobs[i], redraw=redraw) for i in todo]
        made: list[JobResult] = []
        for start in range(0, len(draws), jobs_per_call):
            made += call_pipeline(pipe, spec, draws[start : start + jobs_per_call], seed, height, width, strength)
        again = []
        for i, result in zip(todo, made):
            upcast[i] |= result.upcast
            results[i] = dataclasses.replace(result, redraws=redraws[i], upcast=upcast[i])
            if result.failure is not None and redraw < spec.max_redraws:
                again.append(i)
                redraws[i] += 1
        todo = again
        if not todo:
            break
    return results


def call_pipeline(pipe, spec, jobs: list[Job], seed: int, height: int, width: int,
                  strength: float | None = None) -> list[JobResult]:
    """One pipeline call for `jobs` (the rows of one batch), each with its own torch.Generator.

    The pipeline returns latents; they are decoded here so that non-finite pixels are seen before
    the cast to uint8 (which would make them black): such an image is decoded again with the VAE
    in float32, and fails as "nan" if it is still not finite. The safety checker, when the pipeline
    has one, runs on the decoded images; a flagged image fails as "flagged" (its pixels are dropped,
    never written black)."""
    import torch

    kwargs = dict(
        prompt=[j.prompt for j in jobs],
        negative_prompt=[j.negative_prompt for j in jobs],
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance_scale,
        generator=[j.generator(seed) for j in jobs],
        height=height,
        width=width,
        output_type="latent",
    )
    if spec.mode == "inpaint-insert":
        kwargs.update(image=_floats(j.image for j in jobs), strength=strength,
                      mask_image=np.stack([j.mask for j in jobs]).astype(np.float32)[..., None])
    elif spec.mode == "refine":
        kwargs.update(image=_floats(j.image for j in jobs), strength=strength)
    else:
        kwargs.update(image=_floats(j.control for j in jobs), controlnet_conditioning_scale=spec.controlnet_scale)
    with torch.inference_mode():
        latents = pipe(**kwargs).images
        decoded, upcast = decode_latents(pipe, latents)
        finite = torch.isfinite(decoded).flatten(1).all(dim=1).cpu().numpy()
        flags = np.zeros(len(jobs), bool)
        if getattr(pipe, "safety_checker", None) is not None and finite.any():
            rows = np.flatnonzero(finite)
            _, flagged = pipe.run_safety_checker(decoded[rows], pipe._execution_device, pipe.text_encoder.dtype)
            flags[rows] = np.asarray(flagged if flagged is not None else [False] * len(rows), bool)
        images = pipe.image_processor.postprocess(torch.nan_to_num(decoded), output_type="np",
                                                  do_denormalize=[True] * len(jobs))
    images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    out = []
    for image, ok, flag, up in zip(images, finite, flags, upcast):
        failure = "nan" if not ok else "flagged" if flag else None
        out.append(JobResult(None if failure else image, failure, upcast=bool(up)))
    return out


def decode_latents(pipe, latents):
    """(images B×3×H×W in [-1, 1], upcast per row): the VAE decode the pipeline would do, and for
    rows that come out NaN/Inf in a half-precision VAE (an fp16 overflow), a second decode in float32."""
    import torch

    vae = pipe.vae
    images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    bad = ~torch.isfinite(images).flatten(1).all(dim=1)
    upcast = np.zeros(len(latents), bool)
    if bad.any() and vae.dtype != torch.float32:
        dtype = vae.dtype
        vae.to(torch.float32)
        try:
            again = vae.decode(latents[bad].float() / vae.config.scaling_factor, return_dict=False)[0]
        finally:
            vae.to(dtype)
        images = images.float()
        images[bad] = again
        upcast = bad.cpu().numpy()
    return images, upcast


def _floats(images) -> np.ndarray:
    """B×H×W×3 float32 in [0, 1], the numpy form diffusers' image processor takes."""
    return np.stack(list(images)).astype(np.float32) / 255.0
