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

from harness.exact.local import local_scores
from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import graphs_of, is_cyclic, parent_masks

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
    from harness.exact.dynamic import DP_MAX_VARS

    d = data["graph"]["n_vars"]
    if d > DP_MAX_VARS:
        return (
            f"n_vars = {d} is above the limit of {DP_MAX_VARS} variables (the dynamic programme's time triples "
            "with every added variable: about 2 minutes at d = 20 on 2 CPU cores, docs/performance.md)"
        )
    return None


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
    if np.shape(x)[1] > ENUMERATION_MAX_VARS:  # beyond enumeration: the dynamic programme, cached per data set
        from harness.exact.dynamic import dp_posterior_of

        return dp_posterior_of(x, model, learners_graph_prior(config))
    return exact_posterior(x, model, learners_graph_prior(config))
