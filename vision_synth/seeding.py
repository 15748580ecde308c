"""Per-sample randomness: every random choice of sample i comes from (run seed, i) and nothing else."""

from __future__ import annotations

import numpy as np


def seed_sequence(seed: int, index: int, *stream: int) -> np.random.SeedSequence:
    """The SeedSequence of sample `index`; `stream` separates independent uses (augment copy k, ...)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index), *map(int, stream)))


def rng_for(seed: int, index: int, *stream: int) -> np.random.Generator:
    """The numpy Generator of sample `index` (and optional sub-stream)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, index, *stream)))


def torch_seed_for(seed: int, index: int, *stream: int) -> int:
    """A 63-bit integer seed for a torch.Generator, derived from the same sequence."""
    return int(seed_sequence(seed, index, *stream).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator_for(seed: int, index: int, *stream: int, device: str = "cpu"):
    """A torch.Generator for sample `index`, so diffusion noise is independent of batch makeup."""
    import torch

    return torch.Generator(device=device).manual_seed(torch_seed_for(seed, index, *stream))


# Sub-streams of a sample that have a purpose of their own; the augmentation's copies take
# 0, 1, … (`rng_for(seed, i, c)`), so these count down from the largest 32-bit word.
BACKGROUND_STREAM = 2**32 - 1  # the background of sample i: rng_for(seed, i, BACKGROUND_STREAM)


# Choices made once per dataset rather than per sample, each from its own named stream of the run
# seed. "split" is the seed's root sequence: the stream splits were drawn from before streams had
# names, kept so that a dataset split (and the eval images a learned model was kept away from) stays
# where it was. A new purpose takes the next free key; keys start with a word no sample index
# reaches, so that a stream with its sub-streams is never a sample's.
DATASET_STREAMS: dict[str, tuple[int, ...]] = {"split": (), "texture_bank": (2**32 - 1,), "tune-design": (2**40 + 1,)}


def rng_for_dataset(seed: int, purpose: str, *stream: int) -> np.random.Generator:
    """The numpy Generator of a dataset-level choice (`purpose` from DATASET_STREAMS, optional
    sub-stream), e.g. the split, or field k of texture t of the texture bank."""
    if purpose not in DATASET_STREAMS:
        raise ValueError(f"unknown random stream {purpose!r} (known: {', '.join(DATASET_STREAMS)})")
    if stream and not DATASET_STREAMS[purpose]:  # the root's sub-streams are the samples'
        raise ValueError(f"the {purpose!r} stream has no sub-streams")
    key = (*DATASET_STREAMS[purpose], *map(int, stream))
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=key)
    return np.random.Generator(np.random.PCG64(sequence))
