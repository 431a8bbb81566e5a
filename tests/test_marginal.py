"""Marginal inference (``inference.model``): graphs alone under a closed-form marginal likelihood
(BGe, or the linear Gaussian with Θ integrated out), for the learners that have a marginal mode
(mc3, exact, random, the bootstrap learners), checked against dibs-lib and the exact posterior."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from scipy.special import logsumexp

from harness import run_case
from harness.evaluation.metrics import exact_metrics, marginal_log_likelihoods, mixture_log_weights
from harness.exact.enumeration import exact_posterior, exact_posterior_of
from harness.study.loading import StudyFileError, load_study
from harness.tracking.case_runs import write_case_artifacts
from tests.conftest import ROOT, acyclic_matrices, tiny_study

BGE_STUDY = tiny_study(
    name="bge",
    seeds=[0],
    data={
        "graph": {"type": "er", "n_vars": 4, "edges_per_node": 1},
        "model": {"type": "linear_gaussian"},
        "n_observations": 60,
        "n_ho_observations": 40,
        "interventions": {"n_sets": 2},
        "exact_posterior": True,
    },
    inference={"model": {"type": "bge"}},
    learners={
        "mc3": {"n_particles": 400, "n_chains": 4, "burnin": 2000, "thin": 20},
        "random": {"n_particles": 400},
        "exact": {"n_particles": 50},
        "bootstrap_ges": {"n_particles": 4},
    },
)


def bge_cases(write_study, **changes):
    study = yaml.safe_load(yaml.safe_dump(BGE_STUDY))
    for key, value in changes.items():
        section, _, name = key.partition(".")
        study[section] = value if not name else {**study.get(section, {}), name: value}
    return {c.learner: c for c in load_study(write_study(study))}


def test_the_repositorys_studies_keep_their_config_hashes():
    """Absent, the new keys stay out of every case's config (and so out of its hash: the committed
    baselines and --reuse still match)."""
    checked = 0
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        keys = {*(doc.get("inference") or {}), *(k.removeprefix("inference.") for k in doc.get("sweep") or {})}
        if {"model", "graph_prior"} & keys:
            continue  # (the marginal studies)
        for case in load_study(path):
            assert "model" not in case.config["inference"] and "graph_prior" not in case.config["inference"], case.id
            checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    "change, key, message",
    [
        ({"inference": {"model": {"type": "bge", "alpha_lambda": 5.0}}}, "inference.model", "alpha_lambda > d + 1 = 5"),
        ({"inference": {"model": {"type": "bge", "alpha_mu": 0}}}, "inference.model.alpha_mu", "greater than 0"),
        ({"inference": {"model": {"type": "bde"}}}, "inference.model", "bge"),
        ({"inference": {"model": {"type": "bge"}, "graph_prior": "flat"}}, "inference.graph_prior", "uniform"),
        (
            {"learners": {"crash": {}}, "inference": {"model": {"type": "bge"}}},
            "learners.crash",
            "under the learners' model 'bge' (marginal): it has no marginal mode",
        ),
    ],
)
def test_bad_marginal_settings_are_refused_with_file_and_key(change, key, message, write_study, monkeypatch):
    monkeypatch.setenv("HARNESS_LEARNERS", "crash=tests.broken.crash")  # a learner without check_model
    study = yaml.safe_load(yaml.safe_dump(BGE_STUDY))
    study.update(change)
    path = write_study(study)
    with pytest.raises(StudyFileError) as err:
        load_study(path)
    text = str(err.value)
    assert text.startswith(f"{path}") and f"'{key}" in text and message in text, text


def test_nonlinear_data_under_a_bge_model_are_taken_by_the_graph_learners(write_study):
    study = yaml.safe_load(yaml.safe_dump(BGE_STUDY))
    study["data"]["model"] = {"type": "nonlinear_gaussian", "hidden_layers": [5]}
    cases = {c.learner for c in load_study(write_study(study))}
    assert cases == {"mc3", "random", "exact", "bootstrap_ges"}


def test_held_out_marginal_likelihood_equals_dibs_lib_bge_with_interventions():
    """log p(x | G) of :func:`marginal_log_likelihoods` against dibs-lib's
    ``BGe.log_marginal_likelihood`` (float64), each node's intervened rows left out, on random DAGs."""
    from dibs.models import BGe

    rng = np.random.default_rng(3)
    d, n = 4, 25
    x = rng.normal(size=(n, d)) @ np.triu(rng.normal(size=(d, d)), 1) + rng.normal(size=(n, d))
    mask = np.zeros((n, d), np.int32)
    mask[:8, 1] = mask[5:12, 3] = 1  # two intervened nodes, rows overlapping
    dags = acyclic_matrices(d)[rng.choice(543, 12, replace=False)]
    model = {"type": "bge", "alpha_mu": 0.7, "alpha_lambda": 7.5, "mean_obs": 0.3}
    ours = marginal_log_likelihoods(dags, x, mask, model)
    with jax.enable_x64(True):
        bge = BGe(n_vars=d, alpha_mu=0.7, alpha_lambd=7.5, mean_obs=0.3)  # (an array would raise: `mean_obs or ...`)
        theirs = [
            float(
                bge.log_marginal_likelihood(
                    g=jnp.asarray(g, jnp.float64), x=jnp.asarray(x), interv_targets=jnp.asarray(mask, bool)
                )
            )
            for g in dags
        ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_mixture_weights_are_marginal_dibs_get_mixture(write_study):
    """Under a marginal model the DiBS+ weights are log p(D | G), as dibs-lib's
    ``MarginalDiBS.get_mixture`` (no log p(G) there either)."""
    from dibs.inference import MarginalDiBS
    from dibs.models import BGe, ErdosReniDAGDistribution

    case = bge_cases(write_study)["random"]
    result = run_case(case)
    post, ds = result.posterior, result.dataset
    ours = mixture_log_weights(post, ds, {"type": "bge", "alpha_mu": 1.0, "alpha_lambda": None, "mean_obs": 0.0})
    with jax.enable_x64(True):
        dibs = MarginalDiBS(
            x=jnp.asarray(ds.x, jnp.float64),
            graph_model=ErdosReniDAGDistribution(n_vars=4, n_edges_per_node=1),
            likelihood_model=BGe(n_vars=4, alpha_mu=1.0, alpha_lambd=6.0),
        )
        theirs = np.asarray(dibs.get_mixture(jnp.asarray(post.g, jnp.float64)).logp)
    np.testing.assert_allclose(ours - logsumexp(ours), theirs, atol=1e-8)
    np.testing.assert_allclose(result.log_weights_mixture, ours)


def test_graph_learners_under_bge_have_no_theta_and_mc3_finds_the_exact_posterior(write_study, tmp_path):
    cases = bge_cases(write_study)
    results = {name: run_case(case) for name, case in cases.items()}
    for name, result in results.items():
        assert result.posterior.theta is None, name
        assert np.isfinite(result.metrics["negll_obs"]) and np.isfinite(result.metrics["negll_intrv"])
    write_case_artifacts(tmp_path, cases["mc3"], results["mc3"])
    with open(tmp_path / "thetas.pkl", "rb") as f:
        assert pickle.load(f) == {}  # graphs alone
    # the exact posterior the metrics used is the BGe one (checked against brute force in test_bge.py)
    ds = results["mc3"].dataset
    exact = exact_posterior(np.asarray(ds.x, np.float64), {"type": "bge"}, cases["mc3"].config["data"]["graph"])
    np.testing.assert_allclose(results["mc3"].exact.edge_marginals, exact.edge_marginals)
    mae = {name: r.metrics["edge_mae"] for name, r in results.items()}
    assert mae["mc3"] < 0.05 and mae["mc3"] < mae["random"] / 2, mae
    assert exact_metrics(results["exact"].posterior, exact)["edge_mae"] < 0.1


def test_the_marginal_linear_gaussian_model_is_the_datas_with_theta_integrated_out(write_study):
    """``{type: linear_gaussian, marginal: true}`` takes the data's parameters: its exact posterior is
    the one the joint studies' edge_mae is measured against (the question of configs/exact_small.yaml)."""
    cases = bge_cases(write_study, **{"inference.model": {"type": "linear_gaussian", "marginal": True}})
    config = cases["mc3"].config
    x = np.random.default_rng(0).normal(size=(30, 4))
    data_model = {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0}
    np.testing.assert_allclose(
        exact_posterior_of(config, x).log_prob, exact_posterior(x, data_model, config["data"]["graph"]).log_prob
    )
    assert run_case(cases["mc3"]).posterior.theta is None


def test_a_uniform_graph_prior_weights_every_dag_by_its_likelihood_alone(write_study):
    cases = bge_cases(write_study, **{"inference.graph_prior": "uniform"})
    x = np.random.default_rng(1).normal(size=(30, 4))
    exact = exact_posterior_of(cases["mc3"].config, x)
    dags = acyclic_matrices(4)
    log_lik = marginal_log_likelihoods(dags, x, np.zeros(x.shape, np.int32), {"type": "bge"})
    np.testing.assert_allclose(np.exp(exact.log_prob_of(dags)), np.exp(log_lik - logsumexp(log_lik)), atol=1e-12)


def test_svgd_and_ensemble_run_under_the_marginal_linear_gaussian_model(write_study):
    """MarginalDiBS over the linear Gaussian with Θ integrated out (the harness's own model object):
    its log p(D | G) is the exact posterior's score, and both DiBS learners run on it."""
    import jax.numpy as jnp

    from harness.learners._dibs import marginal_likelihood_model

    model = {"type": "linear_gaussian", "marginal": True, "obs_noise": 0.3, "mean_edge": 0.2, "sig_edge": 0.8}
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 4))
    dags = acyclic_matrices(4)[rng.choice(543, 10, replace=False)]
    mask = np.zeros(x.shape, np.int32)
    mask[:6, 2] = 1
    with jax.enable_x64(True):
        obj = marginal_likelihood_model(model, 4)
        theirs = [
            float(
                obj.interventional_log_marginal_prob(
                    jnp.asarray(g, jnp.float64), None, jnp.asarray(x), jnp.asarray(mask), None
                )
            )
            for g in dags
        ]
    np.testing.assert_allclose(marginal_log_likelihoods(dags, x, mask, model), theirs, rtol=1e-10)

    study = yaml.safe_load(yaml.safe_dump(BGE_STUDY))
    study["inference"] = {"model": {"type": "linear_gaussian", "marginal": True}, "steps": 30, "n_grad_mc_samples": 8}
    study["learners"] = {"svgd": {"n_particles": 3}, "ensemble": {"n_members": 3}}
    for case in load_study(write_study(study)):
        result = run_case(case)
        assert result.posterior.theta is None and result.posterior.z.shape[0] == 3
        assert np.isfinite(result.metrics["negll_obs"]) and np.isfinite(result.metrics["edge_mae"])
