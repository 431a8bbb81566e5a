"""Metrics on small hand-checked graphs, and against dibs-lib's definitions where they coincide."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dibs import metrics as dm
from dibs.models import LinearGaussian
from scipy.stats import norm

from harness.analysis.thresholds import threshold_misses
from harness.data.dataset import Dataset, InterventionSet
from harness.evaluation.metrics import (
    MetricError,
    compute_metrics,
    graph_metrics,
    likelihood_metrics,
    mixture_log_weights,
    shd,
    undefined_areas,
)
from harness.models.graphs import is_cyclic
from harness.models.posterior import Posterior
from tests.conftest import edge_graphs

LINEAR = {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5}


def graphs(*edge_lists, d=3):
    return edge_graphs(*edge_lists, d=d)


def posterior(g, weights=None, theta=None):
    m, d, _ = g.shape
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=float)
    theta = np.ones((m, d, d)) if theta is None else theta
    return Posterior(z=np.zeros((m, d, d, 2)), g=g, theta=theta, log_weights=np.log(w), fit_s=1.0)


TRUTH = graphs([(0, 1), (1, 2)])[0]


def test_shd_counts_a_reversed_edge_once():
    g = graphs([(1, 0), (1, 2)], [(0, 1)], [(0, 1), (1, 2), (0, 2)], [(0, 1), (1, 2)])
    assert shd(g, TRUTH).tolist() == [1, 1, 1, 0]


def test_eshd_is_the_weighted_mean_shd():
    g = graphs([(0, 1), (1, 2)], [(1, 0), (2, 1)])  # SHD 0 and 2
    out = graph_metrics(posterior(g, [0.25, 0.75]), TRUTH)
    assert out["eshd"] == pytest.approx(1.5)
    assert out["n_cyclic"] == 0
    assert out["n_edges"] == pytest.approx(2.0)  # both particles have two edges


def test_cyclic_particles_are_dropped_and_weights_renormalised():
    g = graphs([(0, 1), (1, 2), (2, 0)], [(0, 1)], [(0, 1), (1, 2)])  # first is a cycle
    assert is_cyclic(g).tolist() == [True, False, False]
    out = graph_metrics(posterior(g, [0.8, 0.1, 0.1]), TRUTH)
    assert out["n_cyclic"] == 1
    assert out["eshd"] == pytest.approx(0.5)  # (1 + 0) / 2 after renormalising


def test_self_loops_and_two_cycles_are_cyclic():
    g = graphs([(0, 1), (1, 0)], [(2, 2)], [(0, 1), (1, 2), (0, 2)])
    assert is_cyclic(g).tolist() == [True, True, False]


def test_all_cyclic_falls_back_to_worst_case_values():
    g = graphs([(0, 1), (1, 0)])
    out = graph_metrics(posterior(g), TRUTH)
    # auroc_diag as dibs-lib's threshold_metrics scores no acyclic particle: 0.5
    assert out == {
        "n_cyclic": 1,
        "eshd": 3.0,
        "n_edges": 0.0,
        "auroc": 0.5,
        "auroc_diag": 0.5,
        "auprc": pytest.approx(2 / 6),
    }


@pytest.mark.parametrize(
    "model",
    [LINEAR, {"type": "nonlinear_gaussian", "obs_noise": 0.1, "sig_param": 1.0, "hidden_layers": [5]}],
    ids=["linear", "nonlinear"],
)
def test_all_cyclic_likelihood_scores_the_empty_graph_with_zero_parameters(model):
    """With zero parameters every node's mean is 0 whatever the graph, so each unmasked entry
    scores N(x; 0, obs_noise), whatever Θ the (cyclic) particles hold."""
    rng = np.random.default_rng(7)
    ds = _linear_dataset(rng)
    g = graphs([(0, 1), (1, 0)], [(0, 1), (1, 2), (2, 0)])
    if model is LINEAR:
        theta = rng.normal(size=(2, 3, 3)).astype(np.float32)
    else:
        from dibs.models import DenseNonlinearGaussian

        dibs_model = DenseNonlinearGaussian(n_vars=3, hidden_layers=(5,), obs_noise=0.1, sig_param=1.0)
        theta = dibs_model.sample_parameters(key=jax.random.PRNGKey(0), n_vars=3, n_particles=2)
    out = likelihood_metrics(posterior(g, [0.9, 0.1], theta), ds, model)

    def negll(x, masked=()):
        ll = norm.logpdf(x, loc=0.0, scale=np.sqrt(0.1))
        ll[:, list(masked)] = 0.0
        return -ll.sum()

    assert out["negll_obs"] == pytest.approx(negll(ds.x_ho), rel=1e-5)
    assert out["negll_intrv"] == pytest.approx(negll(ds.interventions[0].x, [1]), rel=1e-5)


def test_auroc_uses_off_diagonal_entries_only():
    # marginals: 0->1 certain, 1->2 at 0.5, false edge 0->2 at 0.5: ranks 1 tie among 4 negatives
    g = graphs([(0, 1), (1, 2)], [(0, 1), (0, 2)])
    out = graph_metrics(posterior(g), TRUTH)
    # positives {1.0, 0.5}; negatives {0.5, 0, 0, 0}: P(pos > neg) = (4 + 3.5) / 8
    assert out["auroc"] == pytest.approx(7.5 / 8)
    # auprc, the trapezoid area under the precision-recall points (recall, precision): threshold 1
    # gives (1/2, 1), threshold 0.5 gives (1, 2/3), and the curve starts at (0, 1):
    # 1/2 * 1 + 1/2 * (1 + 2/3) / 2 = 11/12 (average precision, a step sum, would be 5/6)
    assert out["auprc"] == pytest.approx(11 / 12)
    # dibs-lib counts the three diagonal zeros as extra negatives, which inflates the area
    dibs_auroc = dm.threshold_metrics(dist=_dibs_dist(posterior(g)), g=jnp.array(TRUTH))["roc_auc"]
    assert dibs_auroc > out["auroc"]


def _dibs_dist(post):
    return dm.ParticleDistribution(logp=jnp.array(post.log_weights), g=jnp.array(post.g), theta=post.theta)


def test_eshd_matches_dibs_expected_shd_on_random_particles():
    rng = np.random.default_rng(0)
    d = 5
    g = (rng.random((30, d, d)) < 0.3).astype(np.int32)
    g[:, range(d), range(d)] = 0
    w = rng.dirichlet(np.ones(30))
    truth = np.triu((rng.random((d, d)) < 0.4).astype(np.int32), 1)
    post = posterior(g, w)
    ours = graph_metrics(post, truth)
    theirs = float(dm.expected_shd(dist=_dibs_dist(post), g=jnp.array(truth)))
    assert ours["n_cyclic"] > 0  # the comparison covers the dropping of cyclic particles too
    assert ours["eshd"] == pytest.approx(theirs, rel=1e-5)


def _linear_dataset(rng, d=3, n=20):
    x_ho = rng.normal(size=(n, d)).astype(np.float32)
    x_iv = rng.normal(size=(n, d)).astype(np.float32)
    x_iv[:, 1] = 0.0
    return Dataset(
        g=TRUTH,
        theta=np.zeros((d, d)),
        x=x_ho,
        x_ho=x_ho,
        interventions=[InterventionSet(targets=[1], value=0.0, x=x_iv)],
        nodes=["a", "b", "c"],
    )


def test_negll_by_hand_with_intervened_node_masked():
    rng = np.random.default_rng(1)
    ds = _linear_dataset(rng)
    g = graphs([(0, 1), (1, 2)], [(0, 2)])
    theta = rng.normal(size=(2, 3, 3)).astype(np.float32)
    out = likelihood_metrics(posterior(g, [0.3, 0.7], theta), ds, LINEAR)

    def loglik(x, gm, th, masked=()):
        ll = norm.logpdf(x, loc=x @ (gm * th), scale=np.sqrt(0.1))
        ll[:, list(masked)] = 0.0
        return ll.sum()

    expect_obs = -(0.3 * loglik(ds.x_ho, g[0], theta[0]) + 0.7 * loglik(ds.x_ho, g[1], theta[1]))
    x_iv = ds.interventions[0].x
    expect_iv = -(0.3 * loglik(x_iv, g[0], theta[0], [1]) + 0.7 * loglik(x_iv, g[1], theta[1], [1]))
    assert out["negll_obs"] == pytest.approx(expect_obs, rel=1e-4)
    assert out["negll_intrv"] == pytest.approx(expect_iv, rel=1e-4)


def test_negll_intrv_is_the_mean_over_interventional_sets():
    rng = np.random.default_rng(6)
    ds = _linear_dataset(rng)
    x_iv2 = rng.normal(size=(15, 3)).astype(np.float32)
    x_iv2[:, 2] = 1.5
    ds.interventions.append(InterventionSet(targets=[2], value=1.5, x=x_iv2))
    g = graphs([(0, 1), (1, 2)])
    theta = rng.normal(size=(1, 3, 3)).astype(np.float32)

    def negll(x, masked):
        ll = norm.logpdf(x, loc=x @ (g[0] * theta[0]), scale=np.sqrt(0.1))
        ll[:, masked] = 0.0
        return -ll.sum()

    out = likelihood_metrics(posterior(g, theta=theta), ds, LINEAR)
    expect = (negll(ds.interventions[0].x, 1) + negll(x_iv2, 2)) / 2
    assert out["negll_intrv"] == pytest.approx(expect, rel=1e-4)


def test_negll_is_dibs_joint_metric_without_the_parameter_prior():
    rng = np.random.default_rng(2)
    ds = _linear_dataset(rng)
    g = graphs([(0, 1), (1, 2)], [(0, 2)], [(1, 0)])
    theta = rng.normal(size=(3, 3, 3)).astype(np.float32)
    post = posterior(g, [0.2, 0.5, 0.3], theta)
    model = LinearGaussian(n_vars=3, obs_noise=0.1)
    joint = jax.vmap(
        lambda g1, th, x: model.interventional_log_joint_prob(g1, th, x, jnp.zeros_like(x), None), (0, 0, None)
    )
    dibs_negll = float(
        dm.neg_ave_log_likelihood(dist=_dibs_dist(post), eltwise_log_likelihood=joint, x=jnp.array(ds.x_ho))
    )
    prior = np.array([float(model.log_prob_parameters(theta=jnp.array(theta[k]), g=jnp.array(g[k]))) for k in range(3)])
    ours = likelihood_metrics(post, ds, LINEAR)["negll_obs"]
    assert ours == pytest.approx(dibs_negll + float(np.array([0.2, 0.5, 0.3]) @ prior), rel=1e-4)


@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
def test_mixture_metrics_use_dibs_lib_get_mixture_weights(nonlinear):
    """DiBS+ against dibs-lib itself: the weights are JointDiBS.get_mixture's (normalised the same
    way), and eshd_mixture / negll_obs_mixture are dibs-lib's expected_shd / neg_ave_log_likelihood
    of that mixture (which drop cyclic particles too)."""
    from dibs.graph_utils import elwise_acyclic_constr_nograd
    from dibs.inference import JointDiBS
    from dibs.models import DenseNonlinearGaussian, ErdosReniDAGDistribution
    from scipy.special import logsumexp

    rng = np.random.default_rng(8)
    ds = _linear_dataset(rng, n=40)
    g = graphs([(0, 1), (1, 2)], [(0, 2)], [(1, 0), (0, 1)], [(2, 1)], [])  # the third is cyclic
    if nonlinear:
        model_config = {"type": "nonlinear_gaussian", "obs_noise": 0.1, "sig_param": 1.0, "hidden_layers": [5]}
        model = DenseNonlinearGaussian(n_vars=3, hidden_layers=(5,), obs_noise=0.1, sig_param=1.0)
        theta = model.sample_parameters(key=jax.random.PRNGKey(3), n_vars=3, n_particles=5)
    else:
        model_config = LINEAR
        model = LinearGaussian(n_vars=3, obs_noise=0.1, mean_edge=0.0, sig_edge=1.0, min_edge=0.5)
        theta = rng.normal(size=(5, 3, 3)).astype(np.float32)
    post = posterior(g, theta=theta)
    dibs = JointDiBS(
        x=jnp.array(ds.x),
        interv_mask=jnp.zeros(ds.x.shape, jnp.int32),
        graph_model=ErdosReniDAGDistribution(3, 1),
        likelihood_model=model,
    )
    mixture = dibs.get_mixture(jnp.array(g), theta)

    ours = mixture_log_weights(post, ds, model_config)
    np.testing.assert_allclose(ours - logsumexp(ours), np.asarray(mixture.logp), rtol=1e-6, atol=1e-4)  # float32
    assert not np.allclose(ours, ours[0])  # the weights are not uniform: the test can tell them apart

    before = copy.deepcopy(post)
    metrics = compute_metrics(post, ds, model_config)
    # the metrics change nothing they are given (the mixture weights used to be written into post)
    for name in ("g", "log_weights", "z"):
        np.testing.assert_array_equal(getattr(post, name), getattr(before, name))
    for leaf, leaf_before in zip(jax.tree_util.tree_leaves(post.theta), jax.tree_util.tree_leaves(before.theta)):
        np.testing.assert_array_equal(leaf, leaf_before)
    assert compute_metrics(post, ds, model_config, log_weights_mixture=ours) == metrics
    assert metrics["eshd_mixture"] == pytest.approx(float(dm.expected_shd(dist=mixture, g=jnp.array(TRUTH))), rel=1e-4)
    eltwise = jax.vmap(
        lambda g1, th, x: model.log_likelihood(x=x, theta=th, g=g1, interv_targets=jnp.zeros_like(x)), (0, 0, None)
    )
    negll = float(dm.neg_ave_log_likelihood(dist=mixture, eltwise_log_likelihood=eltwise, x=jnp.array(ds.x_ho)))
    assert metrics["negll_obs_mixture"] == pytest.approx(negll, rel=1e-4)
    assert metrics["eshd"] != pytest.approx(metrics["eshd_mixture"])  # two weightings, two values
    assert np.asarray(elwise_acyclic_constr_nograd(jnp.array(g), 3) > 0).sum() == metrics["n_cyclic"] == 1


def test_nan_parameters_fail_naming_particles_and_quantity():
    rng = np.random.default_rng(3)
    ds = _linear_dataset(rng)
    theta = np.ones((3, 3, 3))
    theta[2, 0, 1] = np.nan
    with pytest.raises(MetricError, match=r"theta.*particles \[2\]"):
        compute_metrics(posterior(graphs([(0, 1)], [(1, 2)], [(0, 2)]), theta=theta), ds, LINEAR)


def test_nan_latents_fail():
    rng = np.random.default_rng(4)
    post = posterior(graphs([(0, 1)], [(1, 2)]))
    post.z[1, 0, 0, 0] = np.inf
    with pytest.raises(MetricError, match=r"latent particles z.*\[1\]"):
        compute_metrics(post, _linear_dataset(rng), LINEAR)


def test_non_finite_metric_is_not_returned():
    rng = np.random.default_rng(5)
    ds = _linear_dataset(rng)
    theta = np.full((1, 3, 3), 1e30, dtype=np.float32)  # finite, but the likelihood overflows
    with pytest.raises(MetricError, match=r"log-likelihood of the held-out data is NaN/inf for particles \[0\]"):
        compute_metrics(posterior(graphs([(0, 1), (1, 2)]), theta=theta), ds, LINEAR)


@pytest.mark.parametrize("truth, what", [(np.zeros((3, 3), np.int32), "no"), (1 - np.eye(3, dtype=np.int32), "every")])
def test_areas_are_left_out_for_an_empty_or_complete_truth_whatever_the_particles(truth, what):
    """The same truth gives the same metric names with acyclic particles and with all cyclic ones."""
    acyclic = graph_metrics(posterior(graphs([(0, 1)], [])), truth)
    cyclic = graph_metrics(posterior(graphs([(0, 1), (1, 0)])), truth)
    assert set(acyclic) == set(cyclic) == {"eshd", "n_edges", "n_cyclic"}
    # SHDs of the two particles: 1 and 0 against the empty truth, 3 and 3 against the complete one
    assert acyclic["eshd"] == (0.5 if what == "no" else 3.0)
    assert undefined_areas(truth).startswith(
        f"auroc, auprc, auroc_diag: the ground-truth graph has {what} possible edge"
    )
    assert undefined_areas(TRUTH) is None


def test_a_nan_or_missing_metric_never_passes_a_threshold():
    bounds = {"eshd": {"max": 5.0}, "auroc": {"min": 0.5, "max": 1.0}}
    assert threshold_misses("c", bounds, {"eshd": 1.0, "auroc": 0.7}) == []
    misses = threshold_misses("c", bounds, {"eshd": float("nan"), "auroc": float("inf")})
    assert len(misses) == 2 and all("is not a finite number" in m for m in misses)
    assert threshold_misses("c", bounds, {"eshd": 1.0}) == [
        "c: auroc was not computed (the run's metrics_not_logged tag says why), but has a threshold "
        "{'min': 0.5, 'max': 1.0}"
    ]


def test_auroc_diag_is_dibs_lib_threshold_metrics_on_a_runs_particles():
    """On the particles of a real (short) svgd run, in both weightings: ``auroc_diag`` is dibs-lib's
    ``threshold_metrics`` roc_auc (the paper's AUROC, diagonal included), and above ``auroc``."""
    from harness import load_study, run_case
    from tests.conftest import ROOT

    case = next(
        c
        for c in load_study(ROOT / "configs" / "smoke.yaml", {"inference.steps": 200, "seeds": [3]})
        if c.learner == "svgd"
    )
    result = run_case(case)
    post, truth = result.posterior, jnp.array(result.dataset.g)
    for suffix, log_weights in (("", post.log_weights), ("_mixture", result.log_weights_mixture)):
        # in float64, as ours: the DiBS+ weights span hundreds of nats, and in float32 dibs-lib's edge
        # beliefs of all but the heaviest particles underflow to tied zeros, which moves the ROC
        with jax.enable_x64(True):
            dist = dm.ParticleDistribution(logp=jnp.array(log_weights, jnp.float64), g=jnp.array(post.g), theta=None)
            theirs = dm.threshold_metrics(dist=dist, g=truth)["roc_auc"]
        assert result.metrics[f"auroc_diag{suffix}"] == pytest.approx(float(theirs), abs=1e-9)
        assert result.metrics[f"auroc_diag{suffix}"] > result.metrics[f"auroc{suffix}"]
