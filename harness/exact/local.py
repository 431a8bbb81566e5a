"""Local scores of every node and parent set, the table both exact posteriors start from
(enumeration, ``harness.exact.enumeration``; the dynamic programme, ``harness.exact.dynamic``)."""

from __future__ import annotations

import numpy as np

from harness.models.graph_priors import log_graph_prior_table
from harness.models.scores import marginal_score

__all__ = ["local_scores"]


def local_scores(x: np.ndarray, model: dict, graph: dict) -> np.ndarray:
    """[d, 2^d] log p(Pa_j) + log p(x_j | x_Pa) for every node and parent bitmask (−inf for masks
    that contain j), ``model`` a section with a closed-form marginal likelihood (``marginal_score``).

    The score's formula is the one ``mc3`` evaluates (``harness.models.scores``); its matrix parts
    are computed once per parent set for every node at once, from the parents' block of the
    statistics (a Cholesky-sized problem of |Pa| instead of d, and a Schur complement per node):
    ``tests/test_dynamic.py`` compares the table with the score evaluated mask by mask."""
    d = np.shape(x)[1]
    score = marginal_score(model, d)
    stat, n = score.statistics(x)
    prior_by_size = log_graph_prior_table(graph, d)
    subsets = np.arange(2**d)
    sizes = np.array([bin(s).count("1") for s in range(2**d)]) if d <= 12 else _popcounts(subsets)
    table = np.full((d, 2**d), -np.inf)
    for k in range(d):
        of_size = subsets[sizes == k]
        for start in range(0, len(of_size), LOCAL_SCORE_CHUNK):
            sets = of_size[start : start + LOCAL_SCORE_CHUNK]
            members = np.nonzero((sets[:, None] >> np.arange(d)) & 1)[1].reshape(len(sets), k)
            values = _local_scores_of_sets(score, stat, n, members) + prior_by_size[min(k, d - 1)]
            inside = ((sets[:, None] >> np.arange(d)) & 1).astype(bool)  # [m, d]: j in its own parent set
            table[:, sets] = np.where(inside, -np.inf, values).T
    return table


def _local_scores_of_sets(score, stat: np.ndarray, n: int, members: np.ndarray) -> np.ndarray:
    """[m, d] the local score of every node j given each parent set (``members`` [m, k] its nodes;
    entries of nodes inside their own set are meaningless)."""
    from harness.models.scores import BGeMarginal, bge_local_from_logdets, linear_gaussian_local_from_parts

    m, k = members.shape
    d = stat.shape[0]
    block = stat[members[:, :, None], members[:, None, :]]  # [m, k, k]
    rows = stat[members, :]  # [m, k, d]
    diag = np.diag(stat)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(score, BGeMarginal):
            logdet_pa = np.linalg.slogdet(block)[1] if k else np.zeros(m)
            schur = diag - (np.einsum("mkd,mkd->md", rows, np.linalg.solve(block, rows)) if k else 0.0)
            logdet_pa_j = logdet_pa[:, None] + np.log(schur)
            return bge_local_from_logdets(
                n, d, k, logdet_pa[:, None], logdet_pa_j, alpha_mu=score.alpha_mu, alpha_lambda=score.alpha_lambda
            )
        s2, me = score.sig_edge**2, score.mean_edge
        precision = np.eye(k) / s2 + block / score.obs_noise  # A's block on the parents
        scaled_logdet = k * np.log(s2) + (np.linalg.slogdet(precision)[1] if k else np.zeros(m))
        b = rows - me * block.sum(axis=-1)[..., None]  # [m, k, d]: b_j on the parents
        quad = np.einsum("mkd,mkd->md", b, np.linalg.solve(precision, b)) if k else np.zeros((m, d))
        rr = diag - 2 * me * rows.sum(axis=1) + me**2 * block.sum(axis=(1, 2))[:, None]
        return linear_gaussian_local_from_parts(n, rr, quad, scaled_logdet[:, None], obs_noise=score.obs_noise)


def _popcounts(values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape, dtype=np.int64)
    v = values.copy()
    while v.any():
        out += v & 1
        v >>= 1
    return out


LOCAL_SCORE_CHUNK = 2**12  # parent sets per batch (64 MB of k x d right-hand sides at d = 20)
