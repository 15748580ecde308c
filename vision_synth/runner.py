"""A generation run: plan the sample indices, generate and write them, merge the shards into a
staging file, then (after the gate, when the config has `quality:`) hand it to the publisher.

Output directory layout (see README "Output"):
  images/  annotations.json  dataset_card.md  previews/grid.png   (published names: publish.py)
  .vision_synth/run.json     what made this directory (config hash, seed): resume or refuse
  .vision_synth/shards/      one JSON-lines record file per process and attempt
  .vision_synth/claims-NNNN/ while processes run: one empty file per chunk of samples taken
  .vision_synth/staging/     the merged annotations, waiting for the gate
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vision_synth import __version__, publish
from vision_synth.coco.writer import (ShardWriter, done_indices, image_file_name, merged_records, sample_records,
                                      write_annotations, write_atomic)
from vision_synth.errors import VisionSynthError
from vision_synth.files import remove_stale_stages_in
from vision_synth.imageio import write_image

STATE_DIR = publish.STATE_DIR
# what a run writes (and --overwrite removes): never anything else in the directory
OUTPUTS = ("images", *publish.PUBLISHED_NAMES, "previews", STATE_DIR)


@dataclass
class RunSummary:
    out_dir: Path
    images: int
    generated: int
    instances: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    launch_seconds: float = 0.0  # of `seconds`, forming the process group (torch, accelerate, rendezvous)
    quality: Any = None  # QualityReport when the config has `quality:`
    annotations: Path | None = None  # annotations.json, or annotations.rejected.json after a failed gate

    @property
    def images_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        total = sum(self.instances.values())
        per_class = ", ".join(f"{name} {n}" for name, n in self.instances.items())
        return [
            f"wrote {self.images} images, {total} instances ({per_class}) to {self.out_dir}",
            f"generated {self.generated} images in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"
            + (f"; {self.launch_seconds:.1f} s of it forming the process group" if self.launch_seconds >= 0.05 else ""),
            f"annotations: {self.annotations}",
            f"preview:     {self.out_dir / 'previews' / 'grid.png'}",
            *(self.quality.lines() if self.quality is not None else []),
        ]


def run_state(config) -> dict:
    return {"config_hash": config.config_hash(), "seed": config.seed, "name": config.name}


def _same_run(previous: dict, state: dict) -> bool:
    return all(previous.get(k) == v for k, v in state.items())


def prepare_output(out_dir: Path, config, overwrite: bool) -> None:
    """Make `out_dir` ready: new, resumable (same config), or cleared with `overwrite`; never mixes
    two configs in one directory."""
    state_file = out_dir / STATE_DIR / "run.json"
    state = run_state(config)
    attempt = 0
    if out_dir.exists() and any(out_dir.iterdir()):
        previous = json.loads(state_file.read_text()) if state_file.is_file() else None
        if overwrite:
            for pattern in OUTPUTS:
                for target in out_dir.glob(pattern):
                    if target.is_dir():
                        shutil.rmtree(target)
                    else:
                        target.unlink()
        elif previous is None:
            raise VisionSynthError(f"{out_dir}: directory is not empty and holds no vision_synth run; "
                                   "choose another --out or pass --overwrite")
        elif not _same_run(previous, state):
            raise VisionSynthError(
                f"{out_dir}: holds a dataset made from a different config (config hash "
                f"{previous.get('config_hash')}, seed {previous.get('seed')}; this one {state['config_hash']}, "
                f"seed {state['seed']}); choose another --out or pass --overwrite")
        else:
            attempt = previous.get("attempt", 0) + 1  # resuming: new shard names, old ones kept
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for folder in (out_dir, out_dir / "images", out_dir / STATE_DIR, publish.staging_file(out_dir).parent):
        remove_stale_stages_in(folder)  # half-written files of a killed run; its images are regenerated
    write_atomic(state_file, json.dumps({**state, "attempt": attempt}, indent=2) + "\n")


def shard_paths(out_dir: Path) -> list[Path]:
    return sorted((out_dir / STATE_DIR / "shards").glob("*.jsonl"))


def dataset_info(config) -> dict:
    return {
        "description": config.name,
        "version": __version__,
        "generator": config.generator,
        "config_hash": config.config_hash(),
        "seed": config.seed,
        "num_images": config.num_images,
    }


def generate_indices(config, generator, out_dir: Path, indices: list[int], shard_name: str,
                     show_progress: bool = True, claims: ChunkClaims | None = None) -> int:
    """Generate and write the samples `indices` (in increasing order) with `generator` (anything with
    `samples(indices) -> list[Sample]` and a `batch_size`); returns how many images were written.
    With `claims`, `indices` is shared with other processes: this one makes only the chunks it
    claims first (the bar then counts every chunk claimed, by any process)."""
    fmt, quality = config.image.format, config.image.quality
    out = config.output
    config_hash = config.config_hash()
    shard = out_dir / STATE_DIR / "shards" / shard_name
    batch = max(1, getattr(generator, "batch_size", 1))
    chunk = batch if claims is None else batch * -(-CLAIM_IMAGES // batch)
    written = 0
    with ShardWriter(shard) as writer, tqdm(total=len(indices), desc="generating", unit="img",
                                             disable=not show_progress, leave=False) as bar:
        for k, begin in enumerate(range(0, len(indices), chunk)):
            part = indices[begin : begin + chunk]
            if claims is None or claims.take(k):
                for start in range(0, len(part), batch):
                    for sample in generator.samples(part[start : start + batch]):
                        name = image_file_name(sample.index, fmt)
                        write_image(out_dir / "images" / name, sample.image, fmt, quality)
                        writer.add(sample_records(sample, name, out.segmentation, out.amodal, config_hash))
                        written += 1
            bar.update(len(part))
    return written


CLAIM_IMAGES = 16  # samples a claim covers at least (rounded up to whole batches)


class ChunkClaims:
    """Chunks of a list of indices that several processes share, each made by the process that
    claims it first, so that a faster process makes more of them (a fixed split leaves the faster
    one idle at the end). Chunk k is claimed by creating `folder/k` exclusively, which is atomic on
    local and network file systems (the processes of a run already share its output folder).
    Every process asks for the chunks in increasing order, so each shard stays in index order."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def take(self, k: int) -> bool:
        try:
            os.close(os.open(self.folder / str(k), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        return True


def merge(config, out_dir: Path) -> dict[str, int]:
    """Merge the shards into the staging file (OUT/.vision_synth/staging/annotations.json) and draw
    the preview. Everything streams from the shards: memory does not grow with the number of images.
    Returns instances per class name."""
    from vision_synth.preview import render_grid

    categories = [c.model_dump() for c in config.categories]
    limit = config.num_images * config.images_per_sample
    counts = write_annotations(publish.staging_file(out_dir), shard_paths(out_dir), dataset_info(config),
                               categories, limit=limit)
    names = {c.id: c.name for c in config.categories}
    per_class = {names[cid]: n for cid, n in counts.items()}
    if config.output.preview_images:
        first = ((r["image"], r["annotations"]) for r in merged_records(shard_paths(out_dir), limit))
        render_grid(first, out_dir / "images", names, out_dir / "previews" / "grid.png", config.output.preview_images)
    return per_class


def make_generator(config, show_progress: bool = True):
    """The sample generator named by `config.generator` (wrapped by the augmentation stage when the
    config has `augment:`); it loads and checks its assets now (`show_progress`: bars while it does)."""
    if config.generator == "diffusion":
        from vision_synth.diffusion import DiffusionGenerator

        try:
            generator = DiffusionGenerator(config, show_progress=show_progress)
        except VisionSynthError as exc:  # about the config's own keys (diffusion.model, ...): name its file
            if str(exc).startswith(("/", config.source)):
                raise
            raise type(exc)(f"{config.source}: {exc}") from None
    else:
        from vision_synth.scene.compositor import Compositor

        generator = Compositor(config, show_progress=show_progress)
    return generator if config.augment is None else AugmentedGenerator(generator, config)


class AugmentedGenerator:
    """Generated samples followed by the augmentation stage: sample i becomes the outputs
    `i * slots + slot` (the original when kept, then copies), copy c drawn from (seed, i, c) alone.
    Copy-paste takes its instances from other generated samples, chosen by the copy's generator."""

    def __init__(self, base, config) -> None:
        self.base, self.config = base, config
        self.batch_size = getattr(base, "batch_size", 1)

    def _sources(self, rng):
        n = self.config.num_images
        picks = rng.choice(n, size=min(self.config.augment.copy_paste.sources, n), replace=False)
        return self.base.samples(sorted(int(i) for i in picks))

    def outputs_of(self, index: int) -> range:
        slots = self.config.augment.slots
        return range(index * slots, (index + 1) * slots)

    def samples(self, indices: list[int]):
        from vision_synth.augment.stage import augmented_copies

        out = []
        for sample in self.base.samples(indices):
            out += augmented_copies(sample, self.config.pipeline, self.config.augment, self._sources)
        return out


def distributed_state(**kwargs):
    """accelerate's PartialState when launched by `accelerate launch` (several processes), else None.

    CUDA: one process per GPU. CPU: `PartialState(cpu=True)` so several CPU processes form a group
    (accelerate needs `--multi_gpu --num_machines 1` for that; `--cpu` alone runs one process).
    `kwargs` go to the process group the first time it is made (`timeout=timedelta(...)`: how long
    a process waits for the others; torch's default is 30 minutes).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), **kwargs)


def generate(config, out_dir: str | Path, overwrite: bool = False, show_progress: bool = True,
             distributed: bool = True) -> RunSummary | None:
    """Generate the dataset of `config` into `out_dir`; resumes a killed run.

    Under `accelerate launch` the missing sample indices are split between the processes
    (contiguous shards); each writes its images and its own shard, and the main process merges
    once all have finished. The output does not depend on the number of processes. Returns the
    summary on the main process, None on the others. `distributed=False`: this process makes the
    whole dataset alone, even under `accelerate launch` (`vision-synth tune` runs one trial a process).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    state = distributed_state() if distributed else None
    launch = time.perf_counter() - start
    is_main = state is None or state.is_main_process
    if state is not None and state.device.type == "cpu":
        import cv2

        cv2.setNumThreads(1)  # one process per core: OpenCV's own thread pool would oversubscribe
    generator = make_generator(config, show_progress and is_main)  # checks every asset before anything is written
    if config.quality is not None:
        from vision_synth.quality.check import check_quality_inputs

        check_quality_inputs(config.quality)  # reference, weights, thresholds: fail before generating
    if is_main:
        prepare_output(out_dir, config, overwrite)
    if state is not None:
        state.wait_for_everyone()
    attempt = json.loads((out_dir / STATE_DIR / "run.json").read_text())["attempt"]
    done = done_indices(shard_paths(out_dir))
    outputs = getattr(generator, "outputs_of", lambda i: (i,))
    todo = [i for i in range(config.num_images) if not all(o in done for o in outputs(i))]
    rank = 0 if state is None else state.process_index
    shard = f"part-{attempt:04d}-rank-{rank:04d}.jsonl"
    if state is not None:
        # every process must plan from the same shards: none may write before all have read them
        state.wait_for_everyone()
    if state is None:
        generated = generate_indices(config, generator, out_dir, todo, shard, show_progress)
    else:  # chunks first come, first served, from a claim folder per attempt
        claims = ChunkClaims(out_dir / STATE_DIR / f"claims-{attempt:04d}")
        generate_indices(config, generator, out_dir, todo, shard, show_progress and is_main, claims)
        state.wait_for_everyone()
        if is_main:  # this attempt's and any a killed one left
            for folder in (out_dir / STATE_DIR).glob("claims-*"):
                shutil.rmtree(folder)
        generated = len(todo) * config.images_per_sample
    if not is_main:
        return None
    per_class = merge(config, out_dir)
    from vision_synth.quality.card import generation_facts, render_card

    facts = generation_facts(config, per_class)
    if config.generator == "diffusion":  # what the label check and the sample guards did
        from dataclasses import replace

        from vision_synth.diffusion.card import card_section

        limit = config.num_images * config.images_per_sample
        facts = replace(facts, sections=[card_section(limit, (r["image"] for r in merged_records(
            shard_paths(out_dir), limit)))])
    quality = None
    if config.quality is None:
        annotations = publish.publish(out_dir, publish.staging_file(out_dir),
                                      publish.Publication(passed=None, card=render_card(facts)))
    else:  # the gate first: annotations.json appears only when it passes
        quality = publish.check_and_publish(out_dir, config.quality, annotations=publish.staging_file(out_dir),
                                            facts=facts, dataset_config=config, progress=show_progress)
        annotations = out_dir / (publish.ANNOTATIONS if quality.passed else publish.REJECTED_ANNOTATIONS)
    images = config.num_images * config.images_per_sample
    return RunSummary(out_dir, images, generated, per_class, time.perf_counter() - start, launch, quality, annotations)


def free_port() -> int:
    """A TCP port free on this machine now, for the processes' rendezvous: accelerate's fixed
    default (29500) collides when two runs start on one machine, or one right after another."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(argv: list[str], processes: int) -> int:
    """Re-run this command under `accelerate launch` with `processes` processes (one per GPU when
    CUDA is present, else CPU processes); returns the launcher's exit code."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--num_processes", str(processes), "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port())]
    if processes > 1:
        cmd.append("--multi_gpu")
    else:  # only here does the launcher need to know about CUDA (importing torch takes seconds)
        import torch

        if not torch.cuda.is_available():
            cmd.append("--cpu")
    cmd += ["-m", "vision_synth", *argv]
    return subprocess.call(cmd)
