"""The DiBS paper's baselines as learners, each against an independent reference: structure MCMC
against the exact posterior (and without its Hastings correction, which must fail), the bootstrap
learners against causal-learn called by hand and scikit-learn's least squares."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from causallearn.graph.Edge import Edge
from causallearn.graph.Endpoint import Endpoint
from causallearn.graph.GeneralGraph import GeneralGraph
from causallearn.graph.GraphNode import GraphNode
from causallearn.search.ConstraintBased.PC import pc
from causallearn.search.ScoreBased.GES import ges
from causallearn.utils.cit import fisherz
from causallearn.utils.DAG2CPDAG import dag2cpdag
from sklearn.linear_model import LinearRegression

from harness import load_study
from harness.data import make_dataset
from harness.data.dataset import Dataset
from harness.evaluation.metrics import exact_metrics
from harness.exact.enumeration import exact_posterior
from harness.learners import _bootstrap, bootstrap_ges, bootstrap_pc, mc3
from harness.learners import random as random_learner
from harness.models.graphs import is_cyclic
from harness.study.loading import StudyFileError
from tests.conftest import ROOT, tiny_study


def exact_small_case(config: str, seed: int):
    case = next(
        c
        for c in load_study(ROOT / "configs" / "exact_small.yaml", {"seeds": [seed]})
        if c.id.startswith(config) and c.learner == "random"
    )
    return case, make_dataset(case.config["data"], seed)


# ---------------------------------------------------------------------------------------------
# mc3
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, seed", [("exact_small-er-4", 1), ("exact_small-er-5", 2)])
def test_mc3_edge_marginals_converge_to_the_exact_ones(config, seed):
    """400 kept samples, 4 chains, kept every 1, 10, 100 steps: edge_mae against the exact posterior
    falls each time, and ends below 0.02 (measured 2026-11-29 over six exact_small data sets:
    0.004-0.010 at thin 100; 0.010-0.037 at thin 1) and below half of the random learner's
    (0.28-0.41 there)."""
    case, dataset = exact_small_case(config, seed)
    data = case.config["data"]
    exact = exact_posterior(dataset.x, data["model"], data["graph"])
    assert np.exp(exact.log_prob).max() < 0.5  # a posterior spread over many graphs
    maes = []
    for thin in (1, 10, 100):
        post = mc3.fit(
            dataset,
            case.config,
            mc3.Settings(n_particles=400, n_chains=4, burnin=1000, thin=thin),
            jax.random.PRNGKey(0),
        )
        maes.append(exact_metrics(post, exact)["edge_mae"])
    chance = random_learner.fit(dataset, case.config, random_learner.Settings(n_particles=400), jax.random.PRNGKey(0))
    assert maes[0] > maes[1] > maes[2]
    assert maes[2] < 0.02
    assert maes[2] < exact_metrics(chance, exact)["edge_mae"] / 2


def test_mc3_needs_the_hastings_correction_to_sample_the_posterior():
    """On these peaked posteriors the Hastings correction changes edge_mae by less than the Monte
    Carlo error (measured: both 0.004-0.010 at 400 samples), so the test above cannot tell. Here it
    can: with zero data the posterior is the graph prior, uniform over the 25 DAGs on 3 nodes (ER,
    p = 0.5). Without the correction a chain samples ∝ |N(G)|, the number of valid moves, which is at
    total variation 0.045 from uniform (computed by enumeration); with it, 20,000 samples come within
    the sampling error (measured 0.011-0.016)."""
    d = 3
    config = {
        "data": {
            "graph": {"type": "er", "n_vars": d, "edges_per_node": 0.5},
            "model": {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0},
        }
    }
    x = np.zeros((10, d), np.float32)
    dataset = Dataset(g=np.zeros((d, d), np.int32), theta=None, x=x, x_ho=x)
    exact = exact_posterior(x, config["data"]["model"], config["data"]["graph"])
    assert np.ptp(exact.log_prob) == 0  # uniform
    settings = mc3.Settings(n_particles=20_000, n_chains=4, burnin=100, thin=5)
    right = mc3.fit(dataset, config, settings, jax.random.PRNGKey(0))
    wrong = mc3.fit(dataset, config, settings, jax.random.PRNGKey(0), hastings=False)
    assert exact_metrics(right, exact)["graph_tv"] < 0.025
    assert exact_metrics(wrong, exact)["graph_tv"] > 0.035


def test_mc3_budget_diagnostics_and_theta():
    case, dataset = exact_small_case("exact_small-sf-4", 0)
    settings = mc3.Settings(n_particles=12, n_chains=3, burnin=50, thin=7)
    assert settings.steps_per_chain == 50 + 7 * 4
    post = mc3.fit(dataset, case.config, settings, jax.random.PRNGKey(3))
    assert post.g.shape == (12, 4, 4) and not is_cyclic(post.g).any()
    assert post.z is None  # graphs, no latent particles
    assert np.all(post.theta[post.g == 0] == 0) and np.all(post.theta[post.g == 1] != 0)
    diag = post.diagnostics
    assert 0 < diag["mc3_acceptance"] <= 1
    assert diag["mc3_ess"] > 0 and diag["mc3_ess_edges"] > 0


def test_mc3_acceptance_is_the_share_of_steps_that_moved_the_chain():
    """With thin = 1 every step is kept, and an accepted move (add, delete, reverse) always changes
    the graph: the acceptance rate is the share of consecutive kept graphs that differ, counted
    here from the samples alone (the step from the last burn-in graph is unseen: within 1/199)."""
    case, dataset = exact_small_case("exact_small-sf-4", 0)
    post = mc3.fit(
        dataset, case.config, mc3.Settings(n_particles=400, n_chains=2, burnin=50, thin=1), jax.random.PRNGKey(1)
    )
    g = post.g.reshape(2, 200, 4, 4)  # chain by chain
    moved = float((g[:, 1:] != g[:, :-1]).any(axis=(2, 3)).mean())
    assert abs(post.diagnostics["mc3_acceptance"] - moved) <= 1 / 199 + 1e-12
    assert 0.05 < moved < 0.95  # a chain that both moves and stays: a halved rate would show


def split_ess(x: np.ndarray) -> float:
    """Split-chain effective sample size of ``x`` [chains, draws], written from Vehtari et al. (2021,
    eqs. 10-11: split chains, multi-chain autocorrelation, Geyer's initial monotone sequence over
    pairs of lags), lag sums taken directly: a reference that shares no code with arviz."""
    half = x.shape[1] // 2
    x = np.concatenate([x[:, :half], x[:, x.shape[1] - half :]])
    m, n = x.shape
    within = x.var(axis=1, ddof=1).mean()
    var_plus = (n - 1) / n * within + x.mean(axis=1).var(ddof=1)
    c = x - x.mean(axis=1, keepdims=True)
    acov = np.array([(c[:, : n - t] * c[:, t:]).sum(axis=1).mean() / n for t in range(n)])
    rho = 1 - (within - acov) / var_plus
    rho[0] = 1.0
    pairs = []
    for t in range(0, n - 1, 2):
        if rho[t] + rho[t + 1] < 0:
            break
        pairs.append(min(rho[t] + rho[t + 1], pairs[-1]) if pairs else rho[t] + rho[t + 1])
    return m * n / (-1 + 2 * sum(pairs))


def test_mc3_ess_is_the_effective_sample_size_of_its_own_chains():
    """``mc3_ess`` (bulk ESS of the log-posterior trace) and ``mc3_ess_edges`` (the smallest ESS of
    an edge indicator) against :func:`split_ess` on the kept samples, the trace rebuilt from the
    exact posterior (log p(G | D) up to a constant, which ranks alike). Within 5 %: arviz follows
    Stan's variant (an extra term for the last even lag), 2 % apart on this chain; a halved or
    doubled ESS is far outside."""
    from scipy.stats import norm, rankdata

    case, dataset = exact_small_case("exact_small-sf-4", 0)
    chains, draws = 2, 200
    settings = mc3.Settings(n_particles=chains * draws, n_chains=chains, burnin=50, thin=3)
    post = mc3.fit(dataset, case.config, settings, jax.random.PRNGKey(1))
    exact = exact_posterior(
        np.asarray(dataset.x, np.float64), case.config["data"]["model"], case.config["data"]["graph"]
    )
    trace = exact.log_prob_of(post.g).reshape(chains, draws)
    ranks = rankdata(trace, method="average").reshape(trace.shape)
    bulk = split_ess(norm.ppf((ranks - 3 / 8) / (trace.size + 1 / 4)))  # rank-normalised (Blom)
    edges = post.g.reshape(chains, draws, -1).astype(np.float64)
    smallest = min(split_ess(edges[..., e]) for e in range(edges.shape[-1]) if np.ptp(edges[..., e]) > 0)
    assert post.diagnostics["mc3_ess"] == pytest.approx(bulk, rel=0.05)
    assert post.diagnostics["mc3_ess_edges"] == pytest.approx(smallest, rel=0.05)
    assert 2 < bulk < chains * draws / 2  # an autocorrelated chain: the ESS says something


def test_mc3_settings_and_models_are_refused_with_file_and_key(write_study):
    msg = _error(write_study, tiny_study(learners={"mc3": {"n_particles": 10, "n_chains": 4}}))
    assert "key 'learners.mc3'" in msg and "n_particles (10) must be a multiple of n_chains (4)" in msg
    nonlinear = tiny_study(learners={"mc3": {"n_particles": 8, "n_chains": 2}})
    nonlinear["data"]["model"] = {"type": "nonlinear_gaussian"}
    msg = _error(write_study, nonlinear)
    assert (
        "key 'learners.mc3': under the learners' model 'nonlinear_gaussian': mc3 samples the marginal posterior" in msg
    )
    assert "M-MC³" in msg
    for learner in ("bootstrap_ges", "bootstrap_pc"):
        s = tiny_study(learners={learner: {"n_particles": 2}})
        s["data"]["model"] = {"type": "nonlinear_gaussian"}
        assert (
            f"key 'learners.{learner}': under the learners' model 'nonlinear_gaussian': {learner} is a linear Gaussian baseline"
            in _error(write_study, s)
        )


def _error(write_study, study) -> str:
    path = write_study(study)
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    assert str(info.value).startswith(str(path))
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Bootstrap GES and PC
# ---------------------------------------------------------------------------------------------


def general_graph(dag: np.ndarray) -> GeneralGraph:
    nodes = [GraphNode(f"X{i + 1}") for i in range(len(dag))]
    graph = GeneralGraph(nodes)
    for i, j in zip(*np.nonzero(dag)):
        graph.add_edge(Edge(nodes[i], nodes[j], Endpoint.TAIL, Endpoint.ARROW))
    return graph


# seed 4's true CPDAG has 1 undirected edge of 3; seed 1's, 4 of 7: most of its orientations are the
# extension's to draw
@pytest.fixture(scope="module", params=[4, 1], ids=["few-undirected", "many-undirected"])
def linear_data(request):
    case, dataset = exact_small_case("exact_small-er-5", request.param)
    return case, dataset


@pytest.mark.parametrize(
    "learner, by_hand",
    [
        (bootstrap_ges, lambda x: ges(x, score_func="local_score_BIC", lambda_value=0.5)["G"].graph),
        (bootstrap_pc, lambda x: pc(x, alpha=0.05, indep_test=fisherz, stable=True, show_progress=False).G.graph),
    ],
)
def test_each_bootstrap_dag_extends_what_causal_learn_returns_for_its_resample(learner, by_hand, linear_data):
    """Per resample (the learner's rows, drawn with its key), causal-learn called by hand returns a
    CPDAG; the learner's DAG is in its equivalence class: causal-learn's own dag2cpdag of the DAG
    gives that CPDAG back (where no fallback rule was needed)."""
    case, dataset = linear_data
    key = jax.random.PRNGKey(7)
    post = learner.fit(dataset, case.config, learner.Settings(n_particles=4), key)
    rows, _ = _bootstrap.resamples(key, dataset.x.shape[0], dataset.n_vars, 4)
    assert post.diagnostics["bootstrap_fallbacks"] == 0
    undirected = []
    for dag, r in zip(post.g, rows):
        expected = by_hand(np.asarray(dataset.x, np.float64)[r])
        assert np.array_equal(dag2cpdag(general_graph(dag)).graph, expected)
        undirected.append(int(((expected == -1) & (expected.T == -1)).sum() // 2))
    if dataset.g.sum() == 7:  # the many-undirected data: the check covered CPDAGs with several undirected edges
        assert max(undirected) >= 2, undirected
    assert len({g.tobytes() for g in post.g}) > 1  # the resamples differ
    # the rows come from the key, with replacement (JAX called here, not through the helper above)
    n = dataset.x.shape[0]
    from_key = [
        np.asarray(jax.random.choice(jax.random.split(k)[0], n, (n,), replace=True)) for k in jax.random.split(key, 4)
    ]
    np.testing.assert_array_equal(rows, np.stack(from_key))
    assert all(len(set(r.tolist())) < n for r in rows)  # repeated rows: drawn with replacement
    # Θ: least squares on all the training rows (the paper's MLE), not on the DAG's resample
    x = np.asarray(dataset.x, np.float64)
    for g, th in zip(post.g, post.theta):
        for j in range(dataset.n_vars):
            pa = np.flatnonzero(g[:, j])
            if pa.size:
                reference = LinearRegression(fit_intercept=False).fit(x[:, pa], x[:, j]).coef_
                np.testing.assert_allclose(th[pa, j], reference, rtol=1e-5, atol=1e-6)


def test_mle_weights_are_least_squares_on_the_parents(linear_data):
    _, dataset = linear_data
    x = np.asarray(dataset.x, np.float64)
    graphs = np.stack([dataset.g, dataset.g.T * 0, np.triu(np.ones((5, 5), np.int32), 1)])
    theta = _bootstrap.mle_theta(x, graphs)
    for g, th in zip(graphs, theta):
        for j in range(5):
            pa = np.flatnonzero(g[:, j])
            if pa.size:
                reference = LinearRegression(fit_intercept=False).fit(x[:, pa], x[:, j]).coef_
                np.testing.assert_allclose(th[pa, j], reference, rtol=1e-8)
            assert np.all(th[g[:, j] == 0, j] == 0)


def test_random_extension_draws_the_members_of_the_equivalence_class():
    """The chain a - b - c (undirected: its CPDAG) extends to the three DAGs without the v-structure
    a -> b <- c, each for some node order; a directed edge is kept."""
    undirected = np.zeros((3, 3), bool)
    undirected[0, 1] = undirected[1, 0] = undirected[1, 2] = undirected[2, 1] = True
    directed = np.zeros((3, 3), bool)
    seen = set()
    for order in itertools.permutations(range(3)):
        dag, fallback = _bootstrap.random_extension(directed, undirected, np.array(order))
        assert not fallback and not (dag[0, 1] and dag[2, 1])
        assert np.array_equal(dag | dag.T, undirected)
        seen.add(dag.tobytes())
    assert len(seen) == 3
    directed[0, 1], undirected[0, 1], undirected[1, 0] = True, False, False  # a -> b - c: b -> c follows
    for order in itertools.permutations(range(3)):
        dag, _ = _bootstrap.random_extension(directed, undirected, np.array(order))
        assert dag[0, 1] and dag[1, 2] and dag.sum() == 2


def test_conflicting_orientations_are_counted_and_treated_as_undirected(linear_data):
    """causal-learn marks i <-> j (two v-structures disagreeing) with 1 at both ends: the pair is an
    undirected edge for the extension, and the resample is counted in bootstrap_conflicts."""
    graph = np.zeros((3, 3), int)
    graph[0, 1], graph[1, 0] = 1, 1  # 0 <-> 1
    graph[2, 1], graph[1, 2] = 1, -1  # 1 -> 2
    directed, undirected, conflict = _bootstrap.pdag_of(graph)
    assert conflict and undirected[0, 1] and undirected[1, 0] and directed[1, 2] and directed.sum() == 1
    _, dataset = linear_data
    d = dataset.n_vars
    endpoints = np.zeros((d, d), int)
    endpoints[0, 1] = endpoints[1, 0] = 1  # a learner whose every resample has one conflict

    post = _bootstrap.fit_bootstrap(dataset, jax.random.PRNGKey(3), 6, lambda x: endpoints)
    assert post.diagnostics["bootstrap_conflicts"] == 6 and post.diagnostics["bootstrap_fallbacks"] == 0
    assert np.all(post.g[:, 0, 1] + post.g[:, 1, 0] == 1) and post.g.sum() == 6  # one edge, some orientation
    assert 0 < post.g[:, 0, 1].sum() < 6  # both orientations drawn over the resamples


def test_a_pdag_without_consistent_extension_falls_back_to_a_dag_on_its_skeleton():
    """An undirected 4-cycle has no consistent extension (every orientation adds a v-structure or
    a cycle); so does a directed 3-cycle. The fallback rule still returns a DAG and says so."""
    ring = np.zeros((4, 4), bool)
    for i in range(4):
        ring[i, (i + 1) % 4] = ring[(i + 1) % 4, i] = True
    dag, fallback = _bootstrap.random_extension(np.zeros((4, 4), bool), ring, np.array([2, 0, 3, 1]))
    assert fallback and not is_cyclic(dag[None])[0] and np.array_equal(dag | dag.T, ring)
    cycle = np.zeros((3, 3), bool)
    cycle[0, 1] = cycle[1, 2] = cycle[2, 0] = True
    dag, fallback = _bootstrap.random_extension(cycle, np.zeros((3, 3), bool), np.array([1, 2, 0]))
    assert fallback and not is_cyclic(dag[None])[0] and dag.sum() == 2
