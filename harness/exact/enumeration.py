"""The exact posterior over DAGs, p(G | D), by enumeration, under a model with a closed-form
marginal likelihood.

The model is the learners' own, its parameters integrated out node by node
(:func:`harness.models.scores.marginal_score`: the linear Gaussian model with Θ integrated out, or
BGe); the graph prior is the one the learners are
given, dibs-lib's model for ``data.graph``, as a per-node table of the parent count
(:func:`harness.models.graph_priors.log_graph_prior_table`). It is normalised over all DAGs here,
so ``log_normalizer`` is the evidence log p(D).

Every DAG on d ≤ :data:`ENUMERATION_MAX_VARS` nodes is enumerated once per process
(:func:`all_dags`: d = 5 has 29,281, d = 6 3,781,503); each local score is computed once per
(node, parent set) and summed per graph. Everything is float64, on the training rows as the
learners see them (float32 values).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import graphs_of, is_cyclic, parent_masks
from harness.models.scores import marginal_score

# the largest d whose DAGs are enumerated: d = 6 takes about a second and 0.2 GB (scripts/bench_exact.py)
ENUMERATION_MAX_VARS = 6


# ---------------------------------------------------------------------------------------------
# Model: local marginal likelihood, conjugate parameter posterior, graph prior
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Enumeration
# ---------------------------------------------------------------------------------------------


@functools.cache
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
            desc = np.concatenate(
                [np.where(to_new, old | (np.int64(1) << k) | below[:, None], old), below[:, None]], axis=1
            )
        parents = new_parents
    return parents.astype(np.int32)


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


def check_supported(data: dict, model: dict | None = None) -> str | None:
    """Why the exact posterior cannot be computed for a ``data`` section under the learners' ``model``
    (default: the data's), or None when it can: a closed-form marginal likelihood, whatever generated
    the data, within the enumeration limit."""
    model = model or data["model"]
    if model["type"] not in ("linear_gaussian", "bge"):
        return (
            f"model type {model['type']!r} has no closed-form marginal likelihood; expected linear_gaussian, "
            "or inference.model: {type: bge} / {type: linear_gaussian, marginal: true}"
        )
    d = data["graph"]["n_vars"]
    if d > ENUMERATION_MAX_VARS:
        return f"n_vars = {d} is above the enumeration limit of {ENUMERATION_MAX_VARS} variables"
    return None


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
    return ExactPosterior(
        local=local,
        parents=parents,
        log_prob=score - total,
        log_normalizer=total - log_prior_total,
        _log_unnormalised_total=total,
    )


def exact_posterior_of(config: dict, x: np.ndarray) -> ExactPosterior:
    """The exact posterior of a case (its config: the learners' model and graph prior,
    ``harness.models.choice``), refused with the reason where unsupported."""
    from harness.models.choice import learners_graph_prior, learners_model

    data, model = config["data"], learners_model(config)
    reason = check_supported(data, model)
    if reason:
        raise ExactPosteriorError(f"data.exact_posterior: {reason}")
    return exact_posterior(x, model, learners_graph_prior(config))
