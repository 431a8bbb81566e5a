"""A multi-particle svgd case, end to end, against dibs-lib's own ``JointDiBS.sample``.

The reference is built from dibs-lib's constructors and this test's own reading of the study file
(its keys mapped to dibs-lib's arguments here, by hand), not through ``Problem.dibs`` or any other
harness code; only the data set (an input, not what is tested) comes from the harness. The harness
side is ``run_case`` as a user calls it: the default fused likelihoods, the compiled loop run in
chunks. Enough steps that the particles' graphs have moved away from their initial state.

In float64 (``inference.dtype``; dibs-lib's side under JAX's 64-bit mode), over 150 steps. Measured
(2026-11-29) beyond that, in float64 and with dibs-lib's own likelihood classes in the harness
(``likelihood_impl: dibs``): the particles agree to 2e-11 at 150 steps and differ by 1e-3 at 200
and by 0.1 at 300 (nonlinear: 8e-9, 3e-5, 0.13): the dynamics at these annealing temperatures
amplify rounding by about 1.4 per step, and the two programs round differently (dibs-lib's loop
bakes the data into the compiled program as constants). dibs-lib's own loop, run in chunks of 50,
100 or 300 steps, gives bit-identical particles, so chunking is not it. In float32 the same
separation comes sooner (Θ 0.066 apart at 300 steps, linear; nonlinear graphs apart at 100 even
with dibs-lib's classes). Past that horizon two correct implementations give different particles of
the same quality: compare them over seeds, as the studies do (docs/metrics.md, "Fidelity").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from dibs.inference import JointDiBS
from dibs.models.graph import ErdosReniDAGDistribution

from harness import load_study, run_case
from harness.data import make_dataset
from tests.conftest import dibs_lib_likelihood

STUDY = """
name: e2e
seeds: [2]
data:
  graph: {type: er, n_vars: 5, edges_per_node: 1}
  model: MODEL
  n_observations: 60
  n_ho_observations: 20
  interventions: {n_sets: 0}
inference: {steps: 150, n_grad_mc_samples: 32, n_acyclicity_mc_samples: 16, alpha_linear: 0.1, stepsize: 0.01,
            dtype: float64}
learners:
  svgd: {n_particles: 6, h_latent: 4.0, h_theta: 300.0}
"""

# prior parameters away from their defaults: a learner that mixed them up with the defaults (or with
# each other) would not follow dibs-lib's trajectory
MODELS = {
    "linear": "{type: linear_gaussian, obs_noise: 0.2, mean_edge: 0.3, sig_edge: 0.7, min_edge: 0.5}",
    "nonlinear": "{type: nonlinear_gaussian, obs_noise: 0.15, sig_param: 0.6, hidden_layers: [5]}",
}


def reference(study: dict, x: np.ndarray):
    """dibs-lib's JointDiBS for the study, its arguments read off the study file here."""
    data, inference, svgd = study["data"], study["inference"], study["learners"]["svgd"]
    d, model = data["graph"]["n_vars"], data["model"]
    likelihood = dibs_lib_likelihood(model, d)
    return JointDiBS(
        x=jnp.asarray(x, jnp.float64),
        graph_model=ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=data["graph"]["edges_per_node"]),
        likelihood_model=likelihood,
        kernel_param={"h_latent": svgd["h_latent"], "h_theta": svgd["h_theta"]},
        optimizer="rmsprop",
        optimizer_param={"stepsize": inference["stepsize"]},
        alpha_linear=inference["alpha_linear"],
        n_grad_mc_samples=inference["n_grad_mc_samples"],
        n_acyclicity_mc_samples=inference["n_acyclicity_mc_samples"],
        latent_prior_std=1.0 / np.sqrt(d),  # k = d (no n_dim in the study)
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_svgd_case_equals_dibs_lib_joint_dibs_sample(model, tmp_path, monkeypatch):
    text = STUDY.replace("MODEL", MODELS[model])
    study = yaml.safe_load(text)
    (tmp_path / "e2e.yaml").write_text(text)
    (case,) = load_study(tmp_path / "e2e.yaml")
    result = run_case(case)

    seed = study["seeds"][0]
    learner_key = jax.random.split(jax.random.PRNGKey(seed))[1]  # the seed's second key (harness.data.synthetic)
    dataset = make_dataset(case.config["data"], seed)  # float32 draws; the case casts them to float64
    monkeypatch.setenv("JAX_ENABLE_X64", "True")  # dibs-lib's own float64 switch (its nonlinear parameters)
    with jax.enable_x64(True):
        dibs = reference(study, dataset.x)
        g, theta = dibs.sample(
            key=learner_key, n_particles=study["learners"]["svgd"]["n_particles"], steps=study["inference"]["steps"]
        )
        initial_z, _ = dibs._sample_initial_random_particles(
            key=jax.random.split(learner_key)[1], n_particles=6, n_dim=5
        )
        initial_g = np.asarray(dibs.particle_to_g_lim(initial_z))

    assert (initial_g != np.asarray(g)).sum() >= 20  # the graphs moved (of 6 x 20 possible edges)
    np.testing.assert_array_equal(result.posterior.g, np.asarray(g))
    for ours, theirs in zip(jax.tree_util.tree_leaves(result.posterior.theta), jax.tree_util.tree_leaves(theta)):
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-6, atol=1e-6)


MARGINAL_STUDY = """
name: e2e_marginal
seeds: [3]
data:
  graph: {type: er, n_vars: 5, edges_per_node: 1}
  model: {type: nonlinear_gaussian, hidden_layers: [5]}
  n_observations: 60
  n_ho_observations: 20
  interventions: {n_sets: 0}
inference: {steps: 150, n_grad_mc_samples: 32, n_acyclicity_mc_samples: 16, alpha_linear: 2.0, stepsize: 0.01,
            dtype: float64, model: {type: bge, alpha_mu: 0.8, alpha_lambda: 9.0}}
learners:
  svgd: {n_particles: 6, h_latent: 2.0}
"""


def test_svgd_under_bge_equals_dibs_lib_marginal_dibs_sample(tmp_path):
    """Marginal inference (``inference.model: {type: bge}``, here on nonlinear data): the harness's
    svgd case against dibs-lib's ``MarginalDiBS.sample`` with dibs-lib's ``BGe`` and the study's
    values mapped here by hand (h_latent as the kernel's h), float64, 150 steps."""
    from dibs.inference import MarginalDiBS
    from dibs.models import BGe

    study = yaml.safe_load(MARGINAL_STUDY)
    (tmp_path / "m.yaml").write_text(MARGINAL_STUDY)
    (case,) = load_study(tmp_path / "m.yaml")
    result = run_case(case)
    assert result.posterior.theta is None

    seed, inference = study["seeds"][0], study["inference"]
    learner_key = jax.random.split(jax.random.PRNGKey(seed))[1]
    dataset = make_dataset(case.config["data"], seed)
    seen = {}
    with jax.enable_x64(True):
        dibs = MarginalDiBS(
            x=jnp.asarray(dataset.x, jnp.float64),
            graph_model=ErdosReniDAGDistribution(n_vars=5, n_edges_per_node=1),
            likelihood_model=BGe(n_vars=5, alpha_mu=0.8, alpha_lambd=9.0),
            kernel_param={"h": study["learners"]["svgd"]["h_latent"]},
            optimizer="rmsprop",
            optimizer_param={"stepsize": inference["stepsize"]},
            alpha_linear=inference["alpha_linear"],
            n_grad_mc_samples=inference["n_grad_mc_samples"],
            n_acyclicity_mc_samples=inference["n_acyclicity_mc_samples"],
            grad_estimator_z="reparam",  # the harness's default (dibs-lib's MarginalDiBS defaults to score)
            latent_prior_std=1.0 / np.sqrt(5),
        )
        g = dibs.sample(
            key=learner_key, n_particles=6, steps=150, callback=lambda zs, **_: seen.update(z=np.asarray(zs))
        )
        initial = dibs._sample_initial_random_particles(key=jax.random.split(learner_key)[1], n_particles=6, n_dim=5)
        initial_g = np.asarray(dibs.particle_to_g_lim(initial))
    assert (initial_g != np.asarray(g)).sum() >= 10  # the graphs moved
    np.testing.assert_array_equal(result.posterior.g, np.asarray(g))
    np.testing.assert_allclose(result.posterior.z, seen["z"], rtol=1e-6, atol=1e-8)
