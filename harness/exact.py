"""The exact posterior over DAGs, p(G | D), of a small linear Gaussian study, by enumeration.

The model is the learners' own: dibs-lib's ``LinearGaussian`` with the study's ``data.model``,
x_j = Σ_{i ∈ Pa(j)} Θ_ij x_i + ε_j with ε_j ~ N(0, obs_noise) and Θ_ij ~ N(mean_edge, sig_edge²)
on the present edges (its ``log_prob_parameters``; ``min_edge`` shapes only how dibs-lib *draws*
ground-truth weights, not the prior density the learners infer with). Θ integrates out per node:

    p(x_j | x_Pa) = N(x_j; mean_edge · X_Pa 1, obs_noise · I_N + sig_edge² · X_Pa X_Paᵀ),

computed from the sufficient statistics C = XᵀX with Woodbury's identity and the matrix
determinant lemma in a d × d form, masked by the parent set (:func:`local_log_marginal`), so one
function serves every parent set, in numpy (the tables here) and in JAX (a sampler's moves).

The graph prior is the one the learners are given, dibs-lib's model for ``data.graph``, as a
per-node table of the parent count (:func:`log_graph_prior_table`): ER ``|Pa| · log(p / (1 - p))``,
SF ``-3 · log(1 + |Pa|)`` (each dibs-lib's ``unnormalized_log_prob`` up to a constant). It is
normalised over all DAGs here, so ``log_normalizer`` is the evidence log p(D).

Every DAG on d ≤ :data:`ENUMERATION_MAX_VARS` nodes is enumerated once per process
(:func:`all_dags`: d = 5 has 29,281, d = 6 3,781,503); each local score is computed once per
(node, parent set) and summed per graph. Everything is float64, on the training rows as the
learners see them (float32 values).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# the largest d whose DAGs are enumerated: d = 6 takes about a second and 0.2 GB (scripts/bench_exact.py)
ENUMERATION_MAX_VARS = 6


# ---------------------------------------------------------------------------------------------
# Model: local marginal likelihood, conjugate parameter posterior, graph prior
# ---------------------------------------------------------------------------------------------


def sufficient_statistics(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(C = XᵀX in float64, N): all the closed forms need of the training rows."""
    x = np.asarray(x, dtype=np.float64)
    return x.T @ x, x.shape[0]


def _masked_precision(c, mask, obs_noise, sig_edge, xp):
    """A = I / sig_edge² + M C M / obs_noise for parent masks [..., d] (unmasked rows: 1/sig_edge² only)."""
    d = c.shape[-1]
    outer = mask[..., :, None] * mask[..., None, :]
    return xp.eye(d) / sig_edge**2 + outer * c / obs_noise


def local_log_marginal(c, n, j, mask, *, obs_noise: float, mean_edge: float, sig_edge: float, xp=np):
    """log p(x_j | x_Pa) with Θ integrated out, for node(s) ``j`` and parent masks ``mask`` [..., d]
    (0/1; ``mask[i] = 1`` for i → j), from C = XᵀX [d, d] and N rows. ``xp`` is numpy or jax.numpy.

    With r = x_j − mean_edge · X m and b = X_mᵀ r = M (c_j − mean_edge · C m):
    log N = −N/2 log 2π − 1/2 (N log σ² + d log s² + log det A) − 1/2 (rᵀr / σ² − bᵀ A⁻¹ b / σ⁴).
    """
    mask = xp.asarray(mask, dtype=c.dtype)
    d = c.shape[-1]
    c_j = c[:, j]  # Xᵀ x_j
    c_jj = c[j, j]
    cm = mask @ c  # [..., d]: (C m)ᵀ, C symmetric
    rr = c_jj - 2 * mean_edge * xp.sum(mask * c_j, axis=-1) + mean_edge**2 * xp.sum(cm * mask, axis=-1)
    b = mask * (c_j - mean_edge * cm)
    a = _masked_precision(c, mask, obs_noise, sig_edge, xp)
    _, logdet = xp.linalg.slogdet(a)
    quad = xp.sum(b * xp.linalg.solve(a, b[..., None])[..., 0], axis=-1)
    return (-0.5 * n * math.log(2 * math.pi) - 0.5 * (n * math.log(obs_noise) + d * math.log(sig_edge**2) + logdet)
            - 0.5 * (rr / obs_noise - quad / obs_noise**2))


def theta_posterior(c, j: int, mask: np.ndarray, *, obs_noise: float, mean_edge: float, sig_edge: float):
    """Mean [d] and covariance [d, d] of p(Θ_{·j} | G, D) for parent mask ``mask`` [d] of node j
    (the conjugate Gaussian; entries of non-parents are 0 in both)."""
    mask = np.asarray(mask, dtype=np.float64)
    a = _masked_precision(c, mask, obs_noise, sig_edge, np)
    cov = np.linalg.inv(a) * np.outer(mask, mask)
    mean = cov @ (mean_edge * mask / sig_edge**2 + mask * c[:, j] / obs_noise)
    return mean, cov


def sample_theta(rng: np.random.Generator, c, graphs: np.ndarray, model: dict) -> np.ndarray:
    """One Θ [d, d] per graph in ``graphs`` [M, d, d], drawn from p(Θ | G, D) column by column (the
    conjugate posterior is computed once per node and parent set, however many graphs share it)."""
    m, d, _ = graphs.shape
    theta = np.zeros((m, d, d))
    keys = dict(obs_noise=model["obs_noise"], mean_edge=model["mean_edge"], sig_edge=model["sig_edge"])
    for j in range(d):
        parent_sets, which = np.unique(graphs[:, :, j], axis=0, return_inverse=True)
        for k, mask in enumerate(parent_sets):
            rows, idx = np.flatnonzero(which.ravel() == k), np.flatnonzero(mask)
            if idx.size:
                mean, cov = theta_posterior(c, j, mask, **keys)
                theta[rows[:, None], idx, j] = rng.multivariate_normal(mean[idx], cov[np.ix_(idx, idx)], size=len(rows))
    return theta


def log_graph_prior_table(graph: dict, d: int) -> np.ndarray:
    """[d] unnormalised log prior of one node's parent set by its size 0..d-1 (dibs-lib's ER or SF
    model for ``data.graph``; a DAG's log prior is the sum over its nodes, up to a constant)."""
    k = np.arange(d, dtype=np.float64)
    if graph["type"] == "er":
        p = graph["edges_per_node"] * d / (d * (d - 1) / 2)  # dibs-lib's ErdosReniDAGDistribution.p
        return k * (math.log(p) - math.log1p(-p))
    return -3.0 * np.log1p(k)


# ---------------------------------------------------------------------------------------------
# Enumeration
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def all_dags(d: int) -> np.ndarray:
    """Every DAG on d nodes, once each: [n_dags, d] parent bitmasks (bit i of column j: i → j).

    Built node by node: a DAG on nodes 0..k is a DAG on 0..k-1 plus node k with parents P and
    children C such that no directed path leads from C to P (P ∩ (C ∪ descendants(C)) = ∅); that
    decomposition is unique, so nothing is generated twice.
    """
    parents = np.zeros((1, 0), dtype=np.int64)
    desc = np.zeros((1, 0), dtype=np.int64)  # descendants of each node, as bitmasks
    for k in range(d):
        subsets = np.arange(2**k, dtype=np.int64)
        bits = (subsets[:, None] >> np.arange(k)) & 1  # [2^k, k]
        closed = (np.int64(1) << np.arange(k)) | desc  # each node with its descendants
        # [n, 2^k]: C ∪ descendants(C) for every DAG so far and child set C
        reach = np.bitwise_or.reduce(np.where(bits[None].astype(bool), closed[:, None, :], 0), axis=-1)
        g, ch, pa = np.nonzero((reach[:, :, None] & subsets[None, None, :]) == 0)
        new_parents = np.concatenate([parents[g] | (bits[ch] << k), pa[:, None]], axis=1)
        if k < d - 1:
            below = reach[g, ch]
            old = desc[g]
            to_new = bits[pa].astype(bool) | ((old & pa[:, None]) != 0)
            desc = np.concatenate([np.where(to_new, old | (np.int64(1) << k) | below[:, None], old), below[:, None]],
                                  axis=1)
        parents = new_parents
    return parents.astype(np.int32)


def parent_masks(g: np.ndarray) -> np.ndarray:
    """[M, d] parent bitmasks of graphs [M, d, d]."""
    g = np.asarray(g, dtype=np.int64)
    return (g << np.arange(g.shape[-1])[:, None]).sum(axis=-2)


def graphs_of(parents: np.ndarray) -> np.ndarray:
    """[M, d, d] adjacency matrices of parent bitmasks [M, d]."""
    d = parents.shape[-1]
    return ((parents[:, None, :] >> np.arange(d)[:, None]) & 1).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# The posterior
# ---------------------------------------------------------------------------------------------


class ExactPosteriorError(ValueError):
    """The exact posterior cannot be computed for this study (model, data or size)."""


@dataclass
class ExactPosterior:
    """p(G | D) over every DAG on d nodes.

    ``local`` [d, 2^d]: log p(Pa_j) + log p(x_j | x_Pa) per node and parent bitmask (unnormalised
    prior; −inf where j would be its own parent); ``parents`` [n_dags, d] every DAG; ``log_prob``
    [n_dags] normalised log-posterior; ``log_normalizer`` log p(D), the evidence under the
    normalised graph prior.
    """

    local: np.ndarray
    parents: np.ndarray
    log_prob: np.ndarray
    log_normalizer: float
    _log_unnormalised_total: float

    @property
    def n_vars(self) -> int:
        return self.parents.shape[1]

    def log_prob_of(self, g: np.ndarray) -> np.ndarray:
        """[M] exact log p(G | D) of graphs [M, d, d]; −inf for a cyclic graph."""
        from harness.metrics import is_cyclic

        masks = parent_masks(g)
        score = self.local[np.arange(self.n_vars), masks].sum(axis=-1) - self._log_unnormalised_total
        return np.where(is_cyclic(g), -np.inf, score)

    @functools.cached_property
    def edge_marginals(self) -> np.ndarray:
        """[d, d] p(i → j | D)."""
        d = self.n_vars
        prob = np.exp(self.log_prob)
        out = np.zeros((d, d))
        member = (np.arange(2**d)[:, None] >> np.arange(d)) & 1  # [2^d, d]: is i in parent set S
        for j in range(d):
            out[:, j] = np.bincount(self.parents[:, j], weights=prob, minlength=2**d) @ member
        return out

    def graphs(self) -> np.ndarray:
        """[n_dags, d, d] every DAG (in the order of ``log_prob``)."""
        return graphs_of(self.parents)


def check_supported(data: dict) -> str | None:
    """Why the exact posterior cannot be computed for a ``data`` section, or None when it can."""
    if data.get("dataset") is not None:
        return "real data: the posterior is exact only under the model that generated the data (synthetic data)"
    if data["model"]["type"] != "linear_gaussian":
        return (f"model type {data['model']['type']!r} has no closed-form marginal likelihood; "
                "expected linear_gaussian")
    d = data["graph"]["n_vars"]
    if d > ENUMERATION_MAX_VARS:
        return f"n_vars = {d} is above the enumeration limit of {ENUMERATION_MAX_VARS} variables"
    return None


def local_scores(x: np.ndarray, model: dict, graph: dict) -> np.ndarray:
    """[d, 2^d] log p(Pa_j) + log p(x_j | x_Pa) for every node and parent bitmask (−inf for masks
    that contain j)."""
    c, n = sufficient_statistics(x)
    d = c.shape[0]
    subsets = np.arange(2**d)
    masks = ((subsets[:, None] >> np.arange(d)) & 1).astype(np.float64)  # [2^d, d]
    # (a mask that holds j itself has d bits at most; those entries become -inf below)
    prior = log_graph_prior_table(graph, d)[np.minimum(masks.sum(axis=1).astype(int), d - 1)]
    keys = dict(obs_noise=model["obs_noise"], mean_edge=model["mean_edge"], sig_edge=model["sig_edge"])
    table = np.stack([local_log_marginal(c, n, j, masks, **keys) + prior for j in range(d)])
    table[masks.T.astype(bool)] = -np.inf
    return table


def exact_posterior(x: np.ndarray, model: dict, graph: dict) -> ExactPosterior:
    """p(G | D) for training rows ``x`` [N, d] under ``data.model`` and the ``data.graph`` prior."""
    from scipy.special import logsumexp  # (not at import: study validation imports this module)

    d = np.shape(x)[1]
    if d > ENUMERATION_MAX_VARS:
        raise ExactPosteriorError(f"n_vars = {d} is above the enumeration limit of {ENUMERATION_MAX_VARS} variables")
    local = local_scores(x, model, graph)
    parents = all_dags(d)
    nodes = np.arange(d)
    score = local[nodes, parents].sum(axis=1)
    total = float(logsumexp(score))
    counts = np.array([bin(s).count("1") for s in range(2**d)])
    log_prior_total = float(logsumexp(log_graph_prior_table(graph, d)[counts[parents]].sum(axis=1)))
    return ExactPosterior(local=local, parents=parents, log_prob=score - total,
                          log_normalizer=total - log_prior_total, _log_unnormalised_total=total)


def exact_posterior_of(data: dict, x: np.ndarray) -> ExactPosterior:
    """The exact posterior of a case's ``data`` section (refused with the reason where unsupported)."""
    reason = check_supported(data)
    if reason:
        raise ExactPosteriorError(f"data.exact_posterior: {reason}")
    return exact_posterior(x, data["model"], data["graph"])
