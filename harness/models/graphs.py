"""Graph utilities on adjacency matrices (``g[..., i, j] = 1`` for i → j): acyclicity, parent
bitmasks, and the graphs of DiBS's latent particles."""

from __future__ import annotations

import numpy as np


def is_cyclic(g: np.ndarray) -> np.ndarray:
    """[M] booleans: whether each graph in ``g`` [M, d, d] has a directed cycle."""
    g = np.asarray(g, dtype=bool)
    d = g.shape[-1]
    reach = g.copy()
    for _ in range(int(np.ceil(np.log2(max(d, 2))))):  # paths up to length 2^k >= d
        reach = reach | (np.einsum("mij,mjk->mik", reach.astype(np.int32), reach.astype(np.int32)) > 0)
    return np.diagonal(reach, axis1=-2, axis2=-1).any(axis=-1)


def parent_masks(g: np.ndarray) -> np.ndarray:
    """[M, d] parent bitmasks of graphs [M, d, d]."""
    g = np.asarray(g, dtype=np.int64)
    return (g << np.arange(g.shape[-1])[:, None]).sum(axis=-2)


def graphs_of(parents: np.ndarray) -> np.ndarray:
    """[M, d, d] adjacency matrices of parent bitmasks [M, d]."""
    d = parents.shape[-1]
    return ((parents[:, None, :] >> np.arange(d)[:, None]) & 1).astype(np.int32)


def graphs_from_latents(z: np.ndarray) -> np.ndarray:
    """dibs-lib's G = 1[u v^T > 0] at alpha = infinity, diagonal masked: [M, d, k, 2] -> [M, d, d]."""
    g = (np.einsum("...ik,...jk->...ij", z[..., 0], z[..., 1]) > 0).astype(np.int32)
    d = g.shape[-1]
    g[..., np.arange(d), np.arange(d)] = 0
    return g
