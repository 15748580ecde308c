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
