"""Euclidean nearest neighbours between feature sets, in chunks so memory stays bounded."""

from __future__ import annotations

from typing import Iterator

import numpy as np

CHUNK_ELEMENTS = 4_000_000  # distances held at once (32 MB of float64)


def distance_blocks(queries: np.ndarray, support: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first query row, block of distances to every support row) over row chunks of `queries`."""
    q = np.asarray(queries, np.float64)
    s = np.asarray(support, np.float64)
    s_sq = (s * s).sum(axis=1)
    rows = max(1, CHUNK_ELEMENTS // max(len(s), 1))
    for start in range(0, len(q), rows):
        block = q[start : start + rows]
        sq = (block * block).sum(axis=1)[:, None] + s_sq[None, :] - 2.0 * block @ s.T
        yield start, np.sqrt(np.maximum(sq, 0.0))


def nearest(queries: np.ndarray, support: np.ndarray, k: int = 1,
            exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and index of the k-th nearest support row of each query row (k = 1: the nearest).
    `exclude_self` when queries and support are the same set: a row is not its own neighbour."""
    n = len(queries)
    available = len(support) - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(f"k={k} neighbours asked of {available} candidates")
    dist = np.empty(n)
    index = np.empty(n, np.int64)
    for start, block in distance_blocks(queries, support):
        if exclude_self:
            rows = np.arange(block.shape[0])
            block[rows, start + rows] = np.inf
        part = np.argpartition(block, k - 1, axis=1)[:, k - 1] if k > 1 else block.argmin(axis=1)
        dist[start : start + len(block)] = block[np.arange(len(block)), part]
        index[start : start + len(block)] = part
    return dist, index


def within_any_ball(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each query lies within the ball of some centre (distance <= that centre's radius)."""
    inside = np.zeros(len(queries), bool)
    for start, block in distance_blocks(queries, centres):
        inside[start : start + len(block)] = (block <= radii[None, :]).any(axis=1)
    return inside
