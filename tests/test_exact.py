"""The exact posterior (harness.exact.enumeration), its metrics and the ``exact`` learner, each checked against a
reference that does not go through the formula under test: Monte Carlo integration with dibs-lib's
own densities, dibs-lib's graph models, brute force over adjacency matrices, autodiff of dibs-lib's
log joint, and posteriors built by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dibs.graph_utils import mat_to_graph
from dibs.models import BGe, LinearGaussian

from harness.data.synthetic import make_graph_model
from harness.evaluation.metrics import exact_metrics, exact_reference_metrics
from harness.exact.enumeration import ExactPosterior, all_dags, exact_posterior
from harness.learners import exact as exact_learner
from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import graphs_of, parent_masks
from harness.models.posterior import Posterior
from harness.models.scores import local_log_marginal, sufficient_statistics, theta_posterior
from tests.conftest import acyclic_matrices, dibs_lib_likelihood, edge_graphs

MODEL = {"type": "linear_gaussian", "obs_noise": 0.5, "mean_edge": 0.3, "sig_edge": 0.8, "min_edge": 0.5}
ER = {"type": "er", "n_vars": 3, "edges_per_node": 0.5}


def dibs_model(model=MODEL, d=3):
    return dibs_lib_likelihood(model, d)


def log_marginal(x, g, model=MODEL):
    """log p(D | G) as exact.py sums it: one local score per node."""
    c, n = sufficient_statistics(x)
    keys = {k: model[k] for k in ("obs_noise", "mean_edge", "sig_edge")}
    return sum(float(local_log_marginal(c, n, j, g[:, j], **keys)) for j in range(g.shape[0]))


# ---------------------------------------------------------------------------------------------
# Enumeration
# ---------------------------------------------------------------------------------------------


def test_dag_counts_are_oeis_a003024():
    assert [len(all_dags(d)) for d in range(1, 7)] == [1, 3, 25, 543, 29281, 3781503]


@pytest.mark.parametrize("d", [3, 4])
def test_enumeration_is_every_acyclic_adjacency_matrix_once(d):
    """Brute force: all 2^(d(d-1)) off-diagonal patterns, kept where acyclic."""
    brute = acyclic_matrices(d)
    mine = graphs_of(all_dags(d))
    assert len(np.unique(parent_masks(mine), axis=0)) == len(mine)  # no duplicates
    assert {m.tobytes() for m in mine} == {b.tobytes() for b in brute}


# ---------------------------------------------------------------------------------------------
# The model: marginal likelihood, parameter posterior, graph prior
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d, edges", [(2, [(0, 1)]), (3, [(0, 2), (1, 2)]), (3, [(0, 1), (1, 2), (0, 2)]), (3, [])])
def test_marginal_likelihood_equals_monte_carlo_over_theta_with_dibs_lib_densities(d, edges):
    """log p(D | G) = log E_q[p(D | G, Θ) p(Θ | G) / q(Θ)], with dibs-lib's ``log_likelihood`` and
    ``log_prob_parameters`` and a wide Gaussian proposal q on the edges (not exact.py's posterior);
    the tolerance is 5 Monte Carlo standard errors."""
    rng = np.random.default_rng(d + len(edges))
    x = rng.normal(size=(4, d))
    g = np.zeros((d, d), dtype=np.int32)
    for i, j in edges:
        g[i, j] = 1
    model = dibs_model(d=d)
    n, scale = 400_000, 1.5
    theta = jax.random.normal(jax.random.PRNGKey(0), (n, d, d)) * scale
    gj, xj, mask = jnp.asarray(g), jnp.asarray(x, jnp.float32), jnp.zeros((4, d), jnp.int32)

    def log_weight(th):
        log_q = jnp.sum(gj * jax.scipy.stats.norm.logpdf(th, 0.0, scale))
        return (
            model.log_likelihood(x=xj, theta=th, g=gj, interv_targets=mask)
            + model.log_prob_parameters(theta=th, g=gj)
            - log_q
        )

    w = np.asarray(jax.jit(jax.vmap(log_weight))(theta), np.float64)
    shift = w.max()
    ratios = np.exp(w - shift)
    estimate = shift + math.log(ratios.mean())
    rel_se = ratios.std() / math.sqrt(n) / ratios.mean()
    assert rel_se < 0.01
    assert log_marginal(x.astype(np.float32), g) == pytest.approx(estimate, abs=5 * rel_se + 1e-4)


def test_parameter_posterior_is_the_stationary_point_and_curvature_of_dibs_lib_log_joint():
    """At the conjugate posterior mean the gradient of dibs-lib's log p(Θ, D | G) in Θ vanishes, and
    its Hessian is minus the posterior precision (the log joint is quadratic in Θ)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    g = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    c, _ = sufficient_statistics(x)
    model = dibs_model()
    mask = jnp.zeros(x.shape, jnp.int32)
    for j in (1, 2):
        mean, cov = theta_posterior(c, j, g[:, j], **{k: MODEL[k] for k in ("obs_noise", "mean_edge", "sig_edge")})
        parents = np.flatnonzero(g[:, j])

        def log_joint(col, j=j, parents=parents):
            theta = jnp.zeros((3, 3)).at[parents, j].set(col)
            return model.interventional_log_joint_prob(jnp.asarray(g), theta, jnp.asarray(x), mask, None)

        with jax.enable_x64(True):
            at = jnp.asarray(mean[parents], jnp.float64)
            grad = np.asarray(jax.grad(log_joint)(at))
            hessian = np.asarray(jax.hessian(log_joint)(at))
        np.testing.assert_allclose(grad, 0.0, atol=1e-3)
        np.testing.assert_allclose(-hessian, np.linalg.inv(cov[np.ix_(parents, parents)]), rtol=1e-4)


# (ER with 1 edge per node at d = 5 has p = 0.5: a uniform prior over DAGs, which tells nothing apart)
@pytest.mark.parametrize(
    "graph",
    [
        {"type": "er", "n_vars": 5, "edges_per_node": 0.5},
        {"type": "er", "n_vars": 5, "edges_per_node": 1.5},
        {"type": "sf", "n_vars": 5, "edges_per_node": 1},
        {"type": "sf", "n_vars": 5, "edges_per_node": 2},
    ],
)
def test_graph_prior_equals_dibs_lib_graph_model_up_to_a_constant(graph):
    dags = graphs_of(all_dags(5)[np.random.default_rng(0).choice(29281, 60, replace=False)])
    table = log_graph_prior_table(graph, 5)
    mine = np.array([table[g.sum(axis=0)].sum() for g in dags])
    dibs = np.array([float(make_graph_model(graph).unnormalized_log_prob(g=mat_to_graph(g))) for g in dags])
    assert np.ptp(mine - dibs) < 1e-5
    assert np.ptp(mine) > 1.0  # the prior does tell these graphs apart


def chain_data(n, seed=0):
    """x0 -> x1 -> x2, unit weights, equal noise variance 0.1, drawn with dibs-lib's sampler."""
    g = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    theta = jnp.asarray(g, jnp.float32)
    model = LinearGaussian(n_vars=3, obs_noise=0.1)
    return g, np.asarray(model.sample_obs(key=jax.random.PRNGKey(seed), n_samples=n, g=mat_to_graph(g), theta=theta))


def posterior_of(scores: np.ndarray, g: np.ndarray) -> float:
    """Normalised posterior mass of DAG ``g`` [3, 3] given log scores of every DAG on 3 nodes."""
    dags = graphs_of(all_dags(3))
    p = np.exp(scores - scores.max())
    return float(p[(dags == g).all(axis=(1, 2))][0] / p.sum())


@jax.jit
def bge_scores(graphs, x):
    """dibs-lib's BGe log marginal likelihood of each graph [M, 3, 3] (a score-equivalent score)."""
    bge = BGe(n_vars=3)
    return jax.vmap(lambda g: bge.log_marginal_likelihood(g=g, x=x, interv_targets=jnp.zeros(x.shape, bool)))(graphs)


def test_posterior_concentrates_on_the_true_dag_itself_as_the_sample_grows():
    """Equal, known noise variances make the DAG identifiable (not only its equivalence class): the
    mass on the true chain grows towards 1 (the runner-up, the chain plus the edge 0 -> 2, loses
    only as N^-1/2, an Occam factor), and the chain's Markov-equivalent DAGs (the reversed chain,
    the fork at 1) vanish. A score-equivalent marginal likelihood (dibs-lib's BGe) on the same data
    cannot tell the chain from the reversed one, so it fails the same checks: the test can tell the
    two kinds of score apart."""
    model = {**MODEL, "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0}
    graph = {"type": "er", "n_vars": 3, "edges_per_node": 0.5}
    reversed_chain = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    mass, mass_reversed, bge_mass, bge_reversed = [], [], [], []
    for n in (10, 100, 1000, 5000):
        g, x = chain_data(n)
        scores = exact_posterior(x, model, graph).log_prob
        mass.append(posterior_of(scores, g))
        mass_reversed.append(posterior_of(scores, reversed_chain))
        scores = np.asarray(bge_scores(jnp.asarray(graphs_of(all_dags(3))), jnp.asarray(x)))
        bge_mass.append(posterior_of(scores, g))
        bge_reversed.append(posterior_of(scores, reversed_chain))
    assert np.all(np.diff(mass) > 0) and mass[-1] > 0.95
    assert max(mass_reversed[2:]) < 1e-6
    # the score-equivalent control: the reversed chain keeps the true chain's mass
    assert max(bge_mass) < 0.5
    np.testing.assert_allclose(bge_reversed, bge_mass, rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# Metrics on a posterior built by hand
# ---------------------------------------------------------------------------------------------


def hand_posterior() -> ExactPosterior:
    """d = 2: p(∅) = 0.5, p(0→1) = 0.3, p(1→0) = 0.2 (node scores chosen to sum to those)."""
    local = np.full((2, 4), -np.inf)
    local[0, 0], local[1, 0], local[1, 1], local[0, 2] = 0.0, math.log(0.5), math.log(0.3), math.log(0.2 / 0.5)
    parents = np.array([[0, 0], [0, 1], [2, 0]], dtype=np.int32)
    return ExactPosterior(
        local=local, parents=parents, log_prob=np.log([0.5, 0.3, 0.2]), log_normalizer=0.0, _log_unnormalised_total=0.0
    )


def particles(*edge_lists, d=2):
    g = edge_graphs(*edge_lists, d=d)
    m = len(edge_lists)
    return Posterior(z=np.zeros((m, d, d, 2)), g=g, theta=np.zeros((m, d, d)), log_weights=np.full(m, -np.log(m)))


def test_exact_posterior_by_hand_has_the_marginals_and_graph_probabilities_given():
    exact = hand_posterior()
    np.testing.assert_allclose(exact.edge_marginals, [[0, 0.3], [0.2, 0]])
    np.testing.assert_allclose(
        np.exp(exact.log_prob_of(particles([], [(0, 1)], [(1, 0)], [(0, 1), (1, 0)]).g)), [0.5, 0.3, 0.2, 0.0]
    )


def test_edge_mae_tv_and_kl_on_a_hand_built_posterior():
    # two copies of 0->1 (merged), one 1->0, one cyclic particle (dropped): q = (2/3 on 0->1, 1/3 on 1->0)
    out = exact_metrics(particles([(0, 1)], [(1, 0)], [(0, 1)], [(0, 1), (1, 0)]), hand_posterior())
    assert out["edge_mae"] == pytest.approx((abs(2 / 3 - 0.3) + abs(1 / 3 - 0.2)) / 2)
    assert out["graph_tv"] == pytest.approx(0.5 * (abs(2 / 3 - 0.3) + abs(1 / 3 - 0.2) + 0.5))
    assert out["graph_kl"] == pytest.approx(2 / 3 * math.log(2 / 3 / 0.3) + 1 / 3 * math.log(1 / 3 / 0.2))


def test_a_perfect_learner_scores_zero_and_all_cyclic_is_the_empty_graph():
    exact = hand_posterior()
    perfect = particles([], [(0, 1)], [(1, 0)])
    perfect.log_weights = np.log([0.5, 0.3, 0.2])
    assert exact_metrics(perfect, exact) == pytest.approx(
        {"edge_mae": 0.0, "graph_tv": 0.0, "graph_kl": 0.0}, abs=1e-12
    )
    cyclic = exact_metrics(particles([(0, 1), (1, 0)]), exact)
    assert cyclic == pytest.approx({"edge_mae": 0.25, "graph_tv": 0.5, "graph_kl": -math.log(0.5)})


def test_exact_reference_metrics_by_hand():
    truth = np.array([[0, 1], [0, 0]])
    # SHD: ∅ 1, 0->1 0, 1->0 1 (a reversed edge counts once); marginals 0.3 (true edge) > 0.2
    assert exact_reference_metrics(hand_posterior(), truth) == pytest.approx({"exact_eshd": 0.7, "exact_auroc": 1.0})


# ---------------------------------------------------------------------------------------------
# The exact learner
# ---------------------------------------------------------------------------------------------


def test_exact_learner_samples_converge_to_the_exact_marginals():
    """20,000 draws: every empirical edge frequency within 5 binomial standard errors of the exact
    marginal, and Θ of the most frequent graph with the conjugate posterior's mean and variance, under
    a prior that is not dibs-lib's default (mean_edge, sig_edge, obs_noise all changed)."""
    from harness.data import make_dataset

    model = {"type": "linear_gaussian", "obs_noise": 0.2, "mean_edge": 0.5, "sig_edge": 0.7}
    data = {
        "graph": {"type": "er", "n_vars": 4, "edges_per_node": 1},
        "model": model,
        "n_observations": 15,
        "n_ho_observations": 10,
        "interventions": {"n_sets": 0},
        "exact_posterior": True,
    }
    from harness.data.spec import DataSpec

    data = DataSpec.model_validate(data).model_dump()
    dataset = make_dataset(data, 3)
    exact = exact_posterior(dataset.x, data["model"], data["graph"])
    assert np.exp(exact.log_prob).max() < 0.5  # a spread posterior, so that sampling is tested
    n = 20_000
    post = exact_learner.fit(dataset, {"data": data}, exact_learner.Settings(n_particles=n), jax.random.PRNGKey(0))
    p = exact.edge_marginals
    freq = post.g.mean(axis=0)
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
    assert post.z is None  # graphs, no latent particles
    # Θ of the most frequent graph: sample mean within 5 standard errors of the conjugate mean
    masks, counts = np.unique(parent_masks(post.g), axis=0, return_counts=True)
    top = (parent_masks(post.g) == masks[counts.argmax()]).all(axis=1)
    g = post.g[top][0]
    c, _ = sufficient_statistics(dataset.x)
    for j in np.flatnonzero(g.sum(axis=0)):
        mean, cov = theta_posterior(c, j, g[:, j], obs_noise=0.2, mean_edge=0.5, sig_edge=0.7)
        idx = np.flatnonzero(g[:, j])
        draws = post.theta[top][:, idx, j]
        se = np.sqrt(np.diag(cov)[idx] / top.sum())
        assert np.all(np.abs(draws.mean(axis=0) - mean[idx]) < 5 * se)
        # the spread too (a draw with 4x the covariance kept the mean): sample variance / variance,
        # whose standard error is sqrt(2 / (n - 1)) for Gaussian draws
        ratio = draws.var(axis=0, ddof=1) / np.diag(cov)[idx]
        assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / (top.sum() - 1))), ratio
        assert np.all(post.theta[top][:, np.flatnonzero(1 - g[:, j]), j] == 0)


@pytest.mark.parametrize(
    "graph",
    [{"type": "er", "n_vars": 4, "edges_per_node": 0.5}, {"type": "sf", "n_vars": 4, "edges_per_node": 1}],
    ids=["er-p1/3", "sf"],
)
def test_exact_posterior_equals_brute_force_under_a_non_uniform_graph_prior(graph):
    """Every acyclic 0/1 matrix on 4 nodes (itertools), scored with the closed-form marginal
    likelihood (checked against Monte Carlo above) and dibs-lib's own graph model, normalised over
    DAGs: the edge marginals, every graph's probability and the evidence log p(D) (the prior's
    normaliser included). ER at p = 1/3 and SF are far from uniform, so a posterior that left the
    graph prior out, or an evidence without the prior's normaliser, fails here."""
    from dibs.graph_utils import mat_to_graph
    from scipy.special import logsumexp

    from harness.data.synthetic import make_graph_model

    rng = np.random.default_rng(5)
    d = 4
    z = rng.normal(size=(20, d))
    x = np.stack([z[:, 0], 0.8 * z[:, 0] + z[:, 1], z[:, 2], 0.5 * z[:, 2] + z[:, 3]], axis=1)
    dags = acyclic_matrices(d)
    log_lik = np.array([log_marginal(x, g) for g in dags])
    with jax.enable_x64(True):  # dibs-lib's prior in float64, as the enumeration's
        log_prior = np.array([float(make_graph_model(graph).unnormalized_log_prob(g=mat_to_graph(g))) for g in dags])
    assert np.ptp(log_prior) > 2.0  # far from uniform
    log_prior -= logsumexp(log_prior)
    joint = log_prior + log_lik
    weights = np.exp(joint - logsumexp(joint))

    exact = exact_posterior(x, MODEL, graph)
    np.testing.assert_allclose(exact.edge_marginals, np.einsum("g,gij->ij", weights, dags), atol=1e-9)
    np.testing.assert_allclose(np.exp(exact.log_prob_of(dags)), weights, atol=1e-9)
    assert exact.log_normalizer == pytest.approx(float(logsumexp(joint)), abs=1e-8)
