"""Minibatched likelihood gradients (``n_grad_batch_size``): each estimate is dibs-lib's full-data
estimator applied to B rows drawn without replacement from the likelihood's key (the B largest of N
uniform draws), fresh per particle; the draw is a uniformly random B-subset; with B = N nothing
changes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from harness.data import make_dataset
from harness.learners import _dibs
from harness.study.loading import StudyFileError, load_study
from tests.conftest import ROOT, tiny_study

D, N, B = 4, 40, 8
LINEAR = {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5}
NONLINEAR = {"type": "nonlinear_gaussian", "obs_noise": 0.1, "sig_param": 1.0, "hidden_layers": [3]}


def problem(model, impl, estimator, **batch):
    from harness.learners.svgd import Settings

    data = {"graph": {"type": "er", "n_vars": D, "edges_per_node": 1}, "model": model}
    settings = Settings(
        n_grad_mc_samples=6, likelihood_impl=impl, grad_estimator_z=estimator, alpha_linear=1.0, **batch
    )
    return _dibs.Problem.build(data, settings.model_dump(), D)


def particles(dibs, key, n=2):
    return dibs._sample_initial_random_particles(key=key, n_particles=n, n_dim=D)


def likelihood_key(subk, estimator: str):
    """The key dibs-lib hands an estimator's likelihood calls (``dibs.inference.JointDiBS``): the
    Z estimators split once for their graphs or noise and once more; the Θ estimator draws its
    graphs from the key itself and splits it once."""
    if estimator == "theta":
        return jax.random.split(subk)[1]
    return jax.random.split(jax.random.split(subk)[0])[1]


def drawn_rows(key, n=N, b=B):
    """The B of N rows with the largest uniform draws of ``key``."""
    return np.argsort(-np.asarray(jax.random.uniform(key, (n,))), kind="stable")[:b]


def test_the_rows_are_a_uniformly_random_subset():
    """Each row in a batch as often as B / N says (the DiBS paper's random.choice(..., replace=False)
    draws the same distribution), over 4000 keys; never twice in one batch."""
    from harness.learners._fused_dibs import GradBatches

    batches = GradBatches.of(B, N, rescale=False)
    rows = np.asarray(jax.vmap(batches.rows)(jax.random.split(jax.random.PRNGKey(9), 4000)))
    assert all(len(set(r)) == B for r in rows)
    counts = np.bincount(rows.ravel(), minlength=N)
    expected, sd = 4000 * B / N, np.sqrt(4000 * B / N * (1 - B / N))
    assert np.all(np.abs(counts - expected) < 5 * sd), counts


@pytest.mark.parametrize("impl", ["fused", "dibs"])
@pytest.mark.parametrize("model", [LINEAR, NONLINEAR], ids=["linear", "nonlinear"])
@pytest.mark.parametrize("estimator", ["score", "reparam", "theta"])
@pytest.mark.parametrize("rescale", [False, True], ids=["paper", "rescaled"])
def test_each_estimate_is_the_full_data_formula_on_the_rows_drawn_from_its_key(impl, model, estimator, rescale):
    """Reference: dibs-lib's own classes (``likelihood_impl: dibs``, no batches) on the drawn rows;
    rescaled, on the drawn rows repeated N / B times (so that the batch likelihood is N / B times
    itself without any scaling code)."""
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(N, D)))
        mask = jnp.zeros((N, D), jnp.int32)
        z_estimator = "score" if estimator == "theta" else estimator
        batched = problem(model, impl, z_estimator, n_grad_batch_size=B, n_grad_batch_rescale=rescale).dibs(x, mask)
        z, theta = particles(batched, jax.random.PRNGKey(1))
        theta = jax.tree_util.tree_map(lambda a: a.astype(x.dtype), theta)  # (stax initialises in float32)
        keys = jax.random.split(jax.random.PRNGKey(2), 2)
        t = jnp.asarray(50.0)
        if estimator == "theta":
            ours = batched.eltwise_grad_theta_likelihood(z, theta, t, keys)
        else:
            ours, _ = batched.eltwise_grad_z_likelihood(z, theta, jnp.zeros(2), t, keys)
        rows = [drawn_rows(likelihood_key(k, estimator)) for k in keys]
        assert len(set(rows[0])) == B and not np.array_equal(np.sort(rows[0]), np.sort(rows[1]))  # fresh per particle
        for m, (k, r) in enumerate(zip(keys, rows)):
            xb = np.tile(np.asarray(x)[r], (N // B, 1)) if rescale else np.asarray(x)[r]
            reference = problem(model, "dibs", z_estimator).dibs(jnp.asarray(xb), jnp.zeros(xb.shape, jnp.int32))
            one = jax.tree_util.tree_map(lambda a, m=m: a[m], theta)
            if estimator == "theta":
                expected = reference.grad_theta_likelihood(z[m], one, t, k)
                jax.tree_util.tree_map(
                    lambda a, b, m=m: np.testing.assert_allclose(a[m], b, rtol=1e-7, atol=1e-9), ours, expected
                )
            else:
                fn = (
                    reference.grad_z_likelihood_score_function
                    if estimator == "score"
                    else reference.grad_z_likelihood_gumbel
                )
                expected, _ = fn(z[m], one, jnp.asarray(0.0), t, k)
                np.testing.assert_allclose(ours[m], expected, rtol=1e-7, atol=1e-9)


def test_a_batch_of_every_row_is_the_full_batch_run_bit_for_bit():
    data = {
        "graph": {"type": "er", "n_vars": D, "edges_per_node": 1},
        "model": LINEAR,
        "n_observations": N,
        "n_ho_observations": 10,
        "interventions": {"n_sets": 0},
    }
    dataset = make_dataset(data, seed=0)
    key = jax.random.PRNGKey(3)
    runs = {
        batch: _dibs.fit_svgd(problem(LINEAR, "fused", "reparam", n_grad_batch_size=batch), 3, 5, dataset, key)
        for batch in (None, N, B)
    }
    np.testing.assert_array_equal(runs[N].z, runs[None].z)
    jax.tree_util.tree_map(np.testing.assert_array_equal, runs[N].theta, runs[None].theta)
    assert not np.array_equal(runs[B].z, runs[None].z)  # (and a real batch is not)


def _study(**inference):
    return tiny_study(
        name="mb",
        data={
            "graph": {"type": "er", "n_vars": D, "edges_per_node": 1},
            "model": {"type": "linear_gaussian"},
            "n_observations": N,
            "n_ho_observations": 10,
        },
        inference={"steps": 2, **inference},
        learners={"svgd": {"n_particles": 2}, "ensemble": {"n_members": 2}},
    )


@pytest.mark.parametrize(
    "inference, key, message",
    [
        ({"n_grad_batch_size": N + 1}, "inference.n_grad_batch_size", f"but the learners have {N} training rows"),
        ({"n_grad_batch_size": 0}, "inference.n_grad_batch_size", "greater than 0"),
        ({"n_grad_batch_size": 10, "model": {"type": "bge"}}, "inference.n_grad_batch_size", "marginal likelihood"),
    ],
)
def test_a_bad_batch_size_is_refused_with_file_and_key(inference, key, message, write_study):
    path = write_study(_study(**inference))
    with pytest.raises(StudyFileError) as err:
        load_study(path)
    text = str(err.value)
    assert text.startswith(str(path)) and f"'{key}'" in text and message in text, text


def test_a_learners_own_batch_size_is_named_by_its_key(write_study):
    study = _study()
    study["learners"]["svgd"]["n_grad_batch_size"] = N + 5
    with pytest.raises(StudyFileError, match="'learners.svgd.n_grad_batch_size'"):
        load_study(write_study(study))


def test_the_batch_settings_reach_the_learners_and_stay_out_of_other_configs(write_study):
    cases = load_study(write_study(_study(n_grad_batch_size=10, n_grad_batch_rescale=True)))
    assert all(c.config["learners"][c.learner]["n_grad_batch_size"] == 10 for c in cases)
    assert all(c.config["learners"][c.learner]["n_grad_batch_rescale"] is True for c in cases)
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if "n_grad_batch_size" in path.read_text():
            continue
        for case in load_study(path)[:4]:
            assert "n_grad_batch_size" not in yaml.safe_dump(case.config), case.id
