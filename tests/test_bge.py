"""The BGe local score (harness.models.scores) against independent references: dibs-lib's
``BGe.log_marginal_likelihood``, score equivalence over every DAG on 4 nodes, and Monte Carlo
integration over the normal-Wishart prior."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from harness.exact.enumeration import all_dags
from harness.models.graphs import graphs_of
from harness.models.scores import bge_local_log_marginal, bge_scatter
from tests.conftest import acyclic_matrices


def bge_of_graph(x, g, **hyper):
    """log p(D | G): the local scores of every node summed."""
    r, n = bge_scatter(x, **hyper)
    d = g.shape[0]
    return sum(
        float(bge_local_log_marginal(r, n, j, g[:, j], **{k: hyper[k] for k in ("alpha_mu", "alpha_lambda")}))
        for j in range(d)
    )


def random_dag(rng, d, p=0.5):
    order = rng.permutation(d)
    g = np.zeros((d, d), dtype=np.int32)
    for a, b in itertools.combinations(range(d), 2):
        if rng.random() < p:
            g[order[a], order[b]] = 1
    return g


@pytest.mark.parametrize("alpha_mu, extra_lambda", [(1.0, 2.0), (0.3, 5.0), (4.0, 1.5)])
def test_local_scores_sum_to_dibs_lib_bge_marginal_likelihood(alpha_mu, extra_lambda):
    from dibs.models import BGe

    rng = np.random.default_rng(11)
    for trial in range(6):
        d, n = int(rng.integers(2, 7)), int(rng.integers(3, 60))
        x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
        g = random_dag(rng, d)
        alpha_lambda = d + extra_lambda
        ours = bge_of_graph(x, g, alpha_mu=alpha_mu, alpha_lambda=alpha_lambda)
        with jax.enable_x64(True):
            # non-default values only: dibs-lib replaces alpha_mu=0 by 1.0 and cannot take an array mean
            model = BGe(n_vars=d, alpha_mu=alpha_mu, alpha_lambd=alpha_lambda)
            theirs = float(
                model.log_marginal_likelihood(
                    g=jnp.asarray(g, jnp.float64), x=jnp.asarray(x, jnp.float64), interv_targets=jnp.zeros((n, d), bool)
                )
            )
        assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-8), (trial, d, n)


def markov_class(g: np.ndarray) -> tuple:
    """Skeleton and v-structures: equal exactly for Markov-equivalent DAGs (Verma & Pearl 1990)."""
    skeleton = frozenset((i, j) for i, j in zip(*np.nonzero(g | g.T)) if i < j)
    d = g.shape[0]
    v = frozenset(
        (min(i, k), j, max(i, k))
        for j in range(d)
        for i in range(d)
        for k in range(d)
        if i < k and g[i, j] and g[k, j] and not (g[i, k] or g[k, i])
    )
    return skeleton, v


def test_markov_equivalent_dags_get_the_same_score_and_others_do_not():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4))
    hyper = dict(alpha_mu=1.0, alpha_lambda=6.0)
    r, n = bge_scatter(x, **hyper)
    graphs = graphs_of(all_dags(4))  # all 543 DAGs
    masks = graphs.transpose(0, 2, 1)  # [G, node, parents]
    scores = sum(bge_local_log_marginal(r, n, j, masks[:, j], **hyper) for j in range(4))
    by_class: dict[tuple, list[float]] = {}
    for g, s in zip(graphs, scores):
        by_class.setdefault(markov_class(g), []).append(float(s))
    assert len(by_class) == 185  # the Markov equivalence classes of DAGs on 4 labelled nodes
    for members in by_class.values():
        assert max(members) - min(members) < 1e-9
    class_scores = sorted(m[0] for m in by_class.values())
    assert min(np.diff(class_scores)) > 1e-6  # classes differ: the test can tell them apart


def test_closed_form_equals_monte_carlo_over_the_normal_wishart_prior():
    """d = 2, the complete DAG (whose BGe score is the data's marginal likelihood under the
    normal-Wishart prior itself): W ~ Wishart(α_λ, T⁻¹), μ | W ~ N(ν, (α_μ W)⁻¹), rows ~ N(μ, W⁻¹)."""
    rng = np.random.default_rng(2)
    x = np.array([[0.3, -0.2], [1.1, 0.9], [-0.4, 0.1]])
    alpha_mu, alpha_lambda, nu = 1.5, 4.5, np.array([0.2, -0.1])
    d, n = 2, len(x)
    t = alpha_mu * (alpha_lambda - d - 1) / (alpha_mu + 1)
    m = 400_000
    w = stats.wishart(df=alpha_lambda, scale=np.eye(d) / t).rvs(size=m, random_state=rng)  # precisions
    cov = np.linalg.inv(w)
    mu = nu + np.einsum("mij,mj->mi", np.linalg.cholesky(cov / alpha_mu), rng.normal(size=(m, d)))
    resid = x[None] - mu[:, None]  # [m, n, d]
    quad = np.einsum("mni,mij,mnj->m", resid, w, resid)
    log_lik = -0.5 * quad + 0.5 * n * np.linalg.slogdet(w)[1] - 0.5 * n * d * math.log(2 * math.pi)
    estimate = logsumexp(log_lik) - math.log(m)
    ratio = np.exp(log_lik - log_lik.max())
    se = ratio.std() / ratio.mean() / math.sqrt(m)  # delta method: the standard error of the log-mean
    exact = bge_of_graph(x, np.array([[0, 1], [0, 0]]), alpha_mu=alpha_mu, alpha_lambda=alpha_lambda, mean_obs=nu)
    assert abs(estimate - exact) < 4 * se, (estimate, exact, se)
    assert se < 0.01  # tight enough to tell a wrong constant (log π, log t terms) from the right one


def test_the_jax_form_equals_the_numpy_form():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(25, 5))
    hyper = dict(alpha_mu=1.0, alpha_lambda=7.0)
    r, n = bge_scatter(x, **hyper)
    masks = rng.integers(0, 2, size=(16, 5)).astype(np.float64)
    masks[:, 2] = 0
    ours = bge_local_log_marginal(r, n, 2, masks, **hyper)
    with jax.enable_x64(True):
        theirs = np.asarray(bge_local_log_marginal(jnp.asarray(r), n, 2, jnp.asarray(masks), xp=jnp, **hyper))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize(
    "graph", [{"type": "er", "n_vars": 4, "edges_per_node": 1.0}, {"type": "sf", "n_vars": 4, "edges_per_node": 1}]
)
def test_exact_bge_posterior_equals_brute_force_with_dibs_lib_densities(graph):
    """Every acyclic 0/1 matrix on 4 nodes (itertools, not the enumeration under test), each scored
    with dibs-lib's BGe marginal likelihood and its graph model: the edge marginals and the evidence
    of ``exact_posterior`` under ``{type: bge}``, the paper's hyperparameters by default."""
    from dibs.graph_utils import mat_to_graph
    from dibs.models import BGe

    from harness.data.synthetic import make_graph_model
    from harness.exact.enumeration import exact_posterior

    rng = np.random.default_rng(4)
    d = 4
    z = rng.normal(size=(30, d))
    x = np.stack([z[:, 0], 2 * z[:, 0] + 0.5 * z[:, 1], 0.5 * z[:, 2], z[:, 3]], axis=1)  # x0 - x1, the rest apart
    x[:, 2] -= 1.5 * x[:, 1]
    dags = acyclic_matrices(d)
    assert len(dags) == 543
    with jax.enable_x64(True):
        model = BGe(n_vars=d, alpha_mu=1.0, alpha_lambd=d + 2.0)
        lml = jax.vmap(
            lambda g: model.log_marginal_likelihood(g=g, x=jnp.asarray(x), interv_targets=jnp.zeros(x.shape, bool))
        )
        log_lik = np.asarray(lml(jnp.asarray(dags, jnp.float64)))
        log_prior = np.array([float(make_graph_model(graph).unnormalized_log_prob(g=mat_to_graph(g))) for g in dags])
    log_prior -= logsumexp(log_prior)  # a normalised prior over DAGs: then the normaliser is the evidence
    joint = log_prior + log_lik
    weights = np.exp(joint - logsumexp(joint))
    marginals = np.einsum("g,gij->ij", weights, dags)

    exact = exact_posterior(x, {"type": "bge"}, graph)
    np.testing.assert_allclose(exact.edge_marginals, marginals, atol=1e-9)
    assert exact.log_normalizer == pytest.approx(float(logsumexp(joint)), abs=1e-8)
    assert np.ptp(marginals[~np.eye(d, dtype=bool)]) > 0.2  # the data tell the edges apart
