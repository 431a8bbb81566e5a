"""The exact posterior by dynamic programming (``harness.exact.dynamic``), against enumeration, the
number of DAGs, and the same recursion in 50-digit arithmetic; the local-score table against the
score evaluated parent set by parent set (the function ``mc3`` calls)."""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest

from harness.exact.dynamic import dp_posterior, log_prior_normaliser, scaled_zeta
from harness.exact.enumeration import exact_posterior, local_scores
from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import graphs_of
from harness.models.scores import marginal_score

MODELS = [
    {"type": "linear_gaussian", "obs_noise": 0.5, "mean_edge": 0.3, "sig_edge": 0.8},
    {"type": "bge", "alpha_mu": 2.0, "mean_obs": 0.1},
]
# the number of DAGs on d labelled nodes (OEIS A003024)
N_DAGS = [1, 1, 3, 25, 543, 29281, 3781503, 1138779265, 783702329343, 1213442454842881]


def data(d: int, seed: int = 0, n: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    for j in range(1, d):  # a chain with noise: some strong, some weak dependences
        x[:, j] += (0.3 + j % 3) * x[:, j - 1]
    return x


def prior(kind: str, d: int) -> dict:
    return {"type": kind, "n_vars": d, "edges_per_node": 1.0 if kind == "sf" else 0.5 * (d - 1) / 2}


@pytest.mark.parametrize("model", MODELS, ids=["linear_gaussian", "bge"])
def test_the_local_score_table_is_the_score_of_each_parent_set(model):
    d = 7
    x = data(d)
    graph = prior("er", d)
    table = local_scores(x, model, graph)
    score = marginal_score(model, d)
    stat, n = score.statistics(x)
    masks = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(np.float64)
    by_size = log_graph_prior_table(graph, d)[np.minimum(masks.sum(axis=1).astype(int), d - 1)]
    for j in range(d):
        own = masks[:, j].astype(bool)
        expected = score.local(stat, n, j, masks) + by_size
        np.testing.assert_allclose(table[j, ~own], expected[~own], rtol=1e-12, atol=1e-9)
        assert np.all(np.isneginf(table[j, own]))


@pytest.mark.parametrize("model", MODELS, ids=["linear_gaussian", "bge"])
@pytest.mark.parametrize("kind", ["er", "sf", "uniform"])
@pytest.mark.parametrize("d", [2, 4, 6])
def test_the_programme_equals_enumeration(model, kind, d):
    x = data(d, seed=d)
    graph = prior(kind, d)
    enumerated = exact_posterior(x, model, graph)
    dp = dp_posterior(enumerated.local, graph)
    np.testing.assert_allclose(dp.edge_marginals, enumerated.edge_marginals, rtol=0, atol=1e-9)
    assert dp.log_normalizer == pytest.approx(enumerated.log_normalizer, abs=1e-9)
    some = graphs_of(enumerated.parents[:: max(1, len(enumerated.parents) // 200)])
    np.testing.assert_allclose(dp.log_prob_of(some), enumerated.log_prob_of(some), rtol=0, atol=1e-9)


@pytest.mark.parametrize("d", range(1, 10))
def test_under_a_flat_score_the_recursion_counts_the_dags(d):
    assert math.exp(log_prior_normaliser({"type": "uniform", "n_vars": d}, d)) == pytest.approx(N_DAGS[d], rel=1e-12)


def mp_forward(a) -> mpmath.mpf:
    """R(V) of the recursion in the module docstring, term by term, in mpmath."""
    d = len(a)
    full = (1 << d) - 1
    r = [mpmath.mpf(0)] * (1 << d)
    r[0] = mpmath.mpf(1)
    for s in range(1, 1 << d):
        total = mpmath.mpf(0)
        t = s
        while t:
            rest = s ^ t
            term = r[rest]
            for v in range(d):
                if (t >> v) & 1:
                    term *= a[v][rest]
            total += term if bin(t).count("1") % 2 else -term
            t = (t - 1) & s
        r[s] = total
    return r[full]


def mp_zeta(local_row, d, feature_parent=None):
    """A_v(U) = Σ_{Pa ⊆ U} exp(local(Pa)), optionally only over parent sets holding ``feature_parent``."""
    weights = [
        mpmath.mpf(0)
        if not math.isfinite(v) or (feature_parent is not None and not (s >> feature_parent) & 1)
        else mpmath.exp(mpmath.mpf(v))
        for s, v in enumerate(local_row)
    ]
    out = []
    for u in range(1 << d):
        total, t = mpmath.mpf(0), u
        while True:
            total += weights[t]
            if t == 0:
                break
            t = (t - 1) & u
        out.append(total)
    return out


@pytest.mark.parametrize("d, pairs", [(7, None), (10, [(0, 1), (3, 2), (9, 4)])])
def test_the_programme_keeps_double_precision_against_50_digit_arithmetic(d, pairs):
    """The evidence, and edge marginals by an independent route (the forward recursion rerun with the
    child's scores restricted to parent sets that hold the parent: no reverse pass), in 50 digits."""
    mpmath.mp.dps = 50
    x = data(d, seed=1, n=60)
    graph = prior("er", d)
    local = local_scores(x, MODELS[1], graph)
    dp = dp_posterior(local, graph)
    zetas = [mp_zeta(local[v], d) for v in range(d)]
    total = mp_forward(zetas)
    assert float(mpmath.log(total)) == pytest.approx(dp._log_unnormalised_total, rel=0, abs=1e-10)
    for i, j in pairs or [(i, j) for i, j in itertools.permutations(range(d), 2)]:
        restricted = list(zetas)
        restricted[j] = mp_zeta(local[j], d, feature_parent=i)
        p = float(mp_forward(restricted) / total)
        assert dp.edge_marginals[i, j] == pytest.approx(p, rel=0, abs=1e-12), (i, j)


def test_scores_thousands_of_nats_apart_take_the_log_domain_and_still_equal_enumeration():
    """5000 rows of strong dependences: each node's best parent set is thousands of nats above its
    others and the per-node optima form cycles, so the scaled evidence underflows to zero; the
    log-domain recursions still give enumeration's posterior (itself computed with logsumexp)."""
    from harness.exact.dynamic import SCALED_FLOOR, _forward

    d = 6
    x = data(d, seed=2, n=5000)
    graph = prior("er", d)
    enumerated = exact_posterior(x, MODELS[0], graph)
    a, _ = scaled_zeta(enumerated.local)
    assert _forward(a)[-1] < SCALED_FLOOR  # (the case the log domain is for)
    dp = dp_posterior(enumerated.local, graph)
    np.testing.assert_allclose(dp.edge_marginals, enumerated.edge_marginals, rtol=0, atol=1e-9)
    assert dp.log_normalizer == pytest.approx(enumerated.log_normalizer, abs=1e-8)


def test_the_log_domain_recursions_equal_the_scaled_ones_on_ordinary_data():
    from harness.exact.dynamic import _backward, _edge_sums, _forward, _log_domain

    d = 7
    local = local_scores(data(d, seed=4), MODELS[1], prior("sf", d))
    a, shift = scaled_zeta(local)
    r = _forward(a)
    total, edges = _log_domain(local)
    assert total == pytest.approx(math.log(r[-1]) + shift.sum(), abs=1e-10)
    np.testing.assert_allclose(edges, _edge_sums(a, _backward(a, r)) / r[-1], rtol=0, atol=1e-12)
