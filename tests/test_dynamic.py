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


def test_the_data_scorer_equals_the_table():
    from harness.exact.dynamic import data_scorer, table_scorer

    d = 7
    x, graph = data(d, seed=5), prior("er", d)
    masks = np.random.default_rng(0).integers(0, 2**d, size=(50, d))
    masks &= ~(1 << np.arange(d))  # no node its own parent
    for model in MODELS:
        np.testing.assert_allclose(
            data_scorer(x, model, graph)(masks), table_scorer(local_scores(x, model, graph))(masks), rtol=1e-12
        )


def test_one_process_computes_a_data_sets_posterior_and_the_others_read_it(tmp_path):
    """Two processes ask at once for the same d = 13 posterior: one computes it (under the cache's
    lock), the other waits and reads; both get the same numbers; another model is another entry."""
    import subprocess
    import sys

    script = (
        "import numpy as np, sys; from tests.test_dynamic import data, prior, MODELS; "
        "from harness.exact.dynamic import dp_posterior_of; "
        "p = dp_posterior_of(data(13, seed=6), MODELS[int(sys.argv[1])], prior('er', 13), sys.argv[2]); "
        "print(repr(p.log_normalizer), repr(float(p.edge_marginals.sum())))"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(__import__("tests.conftest").conftest.ROOT)}
    run = lambda model: subprocess.Popen(  # noqa: E731
        [sys.executable, "-c", script, str(model), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    procs = [run(1), run(1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0]
    assert sum(err.count("exact posterior of 13 variables computed") for _, err in outs) == 1, outs
    assert len(list(tmp_path.glob("*.npz"))) == 1
    other = run(0)
    _, err = other.communicate(timeout=300)
    assert "computed" in err and len(list(tmp_path.glob("*.npz"))) == 2


def test_the_exact_reference_metrics_from_marginals_equal_the_full_posteriors():
    """exact_eshd from the edge marginals (the pairwise identity) equals the weighted SHD of every
    enumerated DAG at d = 5 (exact_auroc is graph_metrics' own area function of the same marginals;
    near-zero marginals computed two ways tie differently, so its value is not compared here)."""
    from harness.evaluation.metrics import exact_reference_metrics, graph_metrics
    from harness.models.posterior import Posterior

    d = 5
    enumerated = exact_posterior(data(d, seed=7), MODELS[0], prior("er", d))
    g_true = np.zeros((d, d), dtype=np.int32)
    g_true[0, 1] = g_true[1, 2] = g_true[3, 2] = 1
    everything = Posterior(z=None, g=graphs_of(enumerated.parents), theta=None, log_weights=enumerated.log_prob)
    full = graph_metrics(everything, g_true)
    ours = exact_reference_metrics(enumerated, g_true)
    assert ours["exact_eshd"] == pytest.approx(full["eshd"], abs=1e-10)
    assert 0.5 < ours["exact_auroc"] <= 1.0 and 0.5 < full["auroc"] <= 1.0


def test_a_study_beyond_enumeration_scores_its_learners_against_the_programme(write_study, tmp_path, monkeypatch):
    """d = 8, mc3 and random: the metrics use the dynamic programme's posterior (cached per data set),
    mc3 comes close to it and chance does not."""
    from harness import load_study, run_case
    from tests.conftest import tiny_study

    monkeypatch.setenv("HARNESS_EXACT_CACHE", str(tmp_path / "cache"))
    study = tiny_study(
        name="dp",
        seeds=[0],
        data={
            "graph": {"type": "er", "n_vars": 8, "edges_per_node": 1},
            "model": {"type": "linear_gaussian"},
            "n_observations": 80,
            "n_ho_observations": 20,
            "interventions": {"n_sets": 0},
            "exact_posterior": True,
        },
        learners={
            "mc3": {"n_particles": 200, "n_chains": 4, "burnin": 4000, "thin": 50},
            "random": {"n_particles": 50},
        },
    )
    results = {c.learner: run_case(c) for c in load_study(write_study(study))}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # one data set, one computation
    mc3, chance = results["mc3"], results["random"]
    expected = dp_posterior(
        local_scores(np.asarray(mc3.dataset.x, np.float64), {**LINEAR_OF_TINY}, prior_of(mc3)), prior_of(mc3)
    )
    np.testing.assert_allclose(mc3.exact.edge_marginals, expected.edge_marginals, atol=1e-12)
    assert mc3.metrics["edge_mae"] < 0.05 < chance.metrics["edge_mae"], (mc3.metrics, chance.metrics)
    assert {"graph_tv", "graph_kl", "exact_eshd", "exact_auroc", "edge_mae_mixture"} <= set(mc3.metrics)


LINEAR_OF_TINY = {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0}


def prior_of(result) -> dict:
    return {"type": "er", "n_vars": 8, "edges_per_node": 1}


@pytest.mark.parametrize("n_rows", [100, 1000])
def test_on_a_studys_data_the_programme_equals_the_log_domain(n_rows):
    """Data as the paper-scale studies draw them (linear Gaussian, noise 0.1, ER with 2 edges per
    node), d = 10. With 100 rows the scaled recursions hold (the best DAG weighs 1, no fallback);
    with 1000 the per-node optima lie hundreds of nats above the best DAG's parents and the
    programme falls back to the log domain. Either way its result is the log domain's."""
    from harness.data import make_dataset
    from harness.exact.dynamic import _forward, _log_domain

    d = 10
    spec = {
        "graph": {"type": "er", "n_vars": d, "edges_per_node": 2},
        "model": {"type": "linear_gaussian"},
        "n_observations": n_rows,
        "n_ho_observations": 10,
        "interventions": {"n_sets": 0},
    }
    x = np.asarray(make_dataset(spec, seed=3).x, np.float64)
    local = local_scores(x, MODELS[0] | {"obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0}, spec["graph"])
    scaled_holds = _forward(scaled_zeta(local)[0])[-1] >= 1.0
    assert scaled_holds == (n_rows == 100)
    dp = dp_posterior(local, spec["graph"])
    total, edges = _log_domain(local)
    assert dp._log_unnormalised_total == pytest.approx(total, abs=1e-8)
    np.testing.assert_allclose(dp.edge_marginals, edges, rtol=0, atol=1e-10)
