"""The fused likelihoods and estimators compute dibs-lib's functions (issue: fast DiBS step).

Reference: dibs-lib's own ``LinearGaussian`` / ``DenseNonlinearGaussian`` and ``JointDiBS``
estimators, on random inputs, with and without interventional masks, for several d.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dibs.inference import JointDiBS
from dibs.models import DenseNonlinearGaussian, LinearGaussian
from dibs.models.graph import ErdosReniDAGDistribution

from harness.data import make_dataset
from harness.learners import _dibs
from harness.learners._fused_dibs import FusedJointDiBS, sigmoid_of_logit_plus
from harness.models.likelihoods import (
    FusedDenseNonlinearGaussian,
    FusedLinearGaussian,
    linear_gaussian_log_likelihoods,
    make_inference_model,
)

MODELS = {
    "linear": (LinearGaussian, FusedLinearGaussian, {}),
    "nonlinear": (DenseNonlinearGaussian, FusedDenseNonlinearGaussian, {"hidden_layers": (5,)}),
    "nonlinear-2-layers-tanh": (
        DenseNonlinearGaussian,
        FusedDenseNonlinearGaussian,
        {"hidden_layers": (4, 3), "activation": "tanh"},
    ),
    "nonlinear-sigmoid-no-bias": (
        DenseNonlinearGaussian,
        FusedDenseNonlinearGaussian,
        {"hidden_layers": (5,), "activation": "sigmoid", "bias": False},
    ),
    # priors that are not dibs-lib's defaults: a mixed-up mean_edge, sig_edge or sig_param shows
    "linear-prior": (LinearGaussian, FusedLinearGaussian, {"obs_noise": 0.3, "mean_edge": 0.4, "sig_edge": 0.6}),
    "nonlinear-prior": (
        DenseNonlinearGaussian,
        FusedDenseNonlinearGaussian,
        {"hidden_layers": (5,), "obs_noise": 0.2, "sig_param": 0.5},
    ),
}


def assert_tree_close(actual, expected, rtol=2e-5, floor=2e-6):
    """Entry by entry, |a - e| <= max(rtol |e|, floor max|e|): each entry to its own relative
    tolerance, with a floor (a tenth of it, relative to the leaf's largest entry) for entries near
    zero, where float32 sums of many terms, reordered, cancel. Never looser than the earlier
    rtol * max|e| for every entry, and a scalar gets exactly rtol."""
    floor = min(floor, rtol / 10)
    for a, e in zip(jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected), strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape
        tol = np.maximum(rtol * np.abs(e), floor * max(np.abs(e).max(), 1e-6))
        bad = np.abs(a - e) > tol
        assert not bad.any(), f"{bad.sum()} of {bad.size} entries off: max diff {np.abs(a - e).max():.3g}"


def _inputs(d, n=40, masked=False, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(k[1], (n, d))
    soft_g = jax.random.uniform(k[2], (d, d)) * (1 - jnp.eye(d))
    mask = (jax.random.uniform(k[3], (n, d)) < 0.3).astype(jnp.int32) if masked else jnp.zeros((n, d), jnp.int32)
    return k[0], x, soft_g, mask


@pytest.mark.parametrize("masked", [False, True], ids=["observational", "interventional"])
@pytest.mark.parametrize("d", [2, 5, 20])
@pytest.mark.parametrize("model", ["linear", "nonlinear", "nonlinear-2-layers-tanh", "linear-prior", "nonlinear-prior"])
def test_fused_log_joint_and_its_gradients_equal_dibs_lib(model, d, masked):
    ref_cls, fused_cls, kwargs = MODELS[model]
    ref, fused = ref_cls(n_vars=d, **kwargs), fused_cls(n_vars=d, **kwargs)
    key, x, soft_g, mask = _inputs(d, masked=masked)
    theta = ref.sample_parameters(key=key, n_vars=d)

    def joint(m):
        return lambda g, th: m.interventional_log_joint_prob(g, th, x, mask, None)

    @jax.jit
    def everything(g, hard, th):
        """likelihood, log joint, ∇ w.r.t. the soft graph (what the Gumbel-softmax estimator of ∇_Z
        uses) and Θ, and ∇_Θ at a hard graph (as the Θ estimator samples them), for both models"""
        return [
            (
                m.log_likelihood(x=x, theta=th, g=g, interv_targets=mask),
                joint(m)(g, th),
                jax.grad(joint(m), (0, 1))(g, th),
                jax.grad(joint(m), 1)(hard, th),
            )
            for m in (fused, ref)
        ]

    (lik, lj, grads, grads_hard), (lik_ref, lj_ref, grads_ref, grads_hard_ref) = everything(
        soft_g, (soft_g > 0.5).astype(jnp.int32), theta
    )
    assert_tree_close(lik, lik_ref, rtol=1e-6)
    assert_tree_close(lj, lj_ref, rtol=1e-6)
    assert_tree_close(grads, grads_ref)
    assert_tree_close(grads_hard, grads_hard_ref)


@pytest.mark.parametrize("masked", [False, True], ids=["observational", "interventional"])
@pytest.mark.parametrize("d", [3, 20])
@pytest.mark.parametrize("model", ["linear", "nonlinear", "nonlinear-2-layers-tanh", "nonlinear-sigmoid-no-bias"])
def test_batched_log_joints_and_their_gradients_equal_dibs_lib(model, d, masked):
    """What the fused estimators differentiate: log p(Θ, D | G_s) for S graphs sharing Θ (the
    hand-written reverse pass for one hidden layer, the mapped per-graph form otherwise), and the
    gradient of a weighted sum of them w.r.t. the graphs, Θ and the data, against dibs-lib's
    per-graph function mapped over the graphs."""
    ref_cls, fused_cls, kwargs = MODELS[model]
    ref, fused = ref_cls(n_vars=d, **kwargs), fused_cls(n_vars=d, **kwargs)
    key, x, _, mask = _inputs(d, masked=masked)
    k_theta, k_g, k_w = jax.random.split(key, 3)
    theta = ref.sample_parameters(key=k_theta, n_vars=d)
    soft_gs = jax.random.uniform(k_g, (7, d, d)) * (1 - jnp.eye(d))
    weights = jax.random.uniform(k_w, (7,))

    def weighted(gs, th, x, batched):
        return weights @ batched(gs, th, x)

    fused_batched = lambda gs, th, x: fused.interventional_log_joint_probs(gs, th, x, mask)
    ref_batched = lambda gs, th, x: jax.vmap(lambda g: ref.interventional_log_joint_prob(g, th, x, mask, None))(gs)

    @jax.jit
    def everything(gs):
        hard = (gs > 0.5).astype(jnp.int32)  # as dibs-lib samples them for the Θ estimator
        return [
            (f(gs, theta, x), jax.grad(weighted, (0, 1, 2))(gs, theta, x, f), jax.grad(weighted, 1)(hard, theta, x, f))
            for f in (fused_batched, ref_batched)
        ]

    (lj, grads, grads_hard), (lj_ref, grads_ref, grads_hard_ref) = everything(soft_gs)
    assert lj.shape == (7,)
    assert_tree_close(lj, lj_ref, rtol=1e-6)
    assert_tree_close(grads, grads_ref)
    assert_tree_close(grads_hard, grads_hard_ref)


@pytest.mark.parametrize(
    "d, edges_per_node, min_edge, seed",
    [
        (20, 2, 0.5, 0),
        (20, 2, 0.5, 2),
        (20, 2, 0.0, 0),
        (6, 1, 0.5, 0),
    ],
    ids=["paper-d20-seed0-sd16", "paper-d20-seed2", "paper-min-edge-0", "smoke-d6"],
)
def test_gram_form_is_as_accurate_as_the_direct_form_at_study_data_scales(d, edges_per_node, min_edge, seed):
    """The linear likelihood from Gram matrices rounds differently from dibs-lib's residual sum.
    On the studies' data (column sd up to 16 in the paper's d = 20 setting, where both forms cancel
    large terms), near the true graph where the residuals are smallest, its float32 error against
    the float64 value (and that of its gradient w.r.t. the weights) is no larger than the direct
    form's own float32 error, up to a factor of 4."""
    data = {
        "graph": {"type": "er", "n_vars": d, "edges_per_node": edges_per_node},
        "model": {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": min_edge},
        "n_observations": 100,
        "n_ho_observations": 10,
        "interventions": {"n_sets": 0},
    }
    dataset = make_dataset(data, seed=seed)
    rng = np.random.default_rng(seed)
    flips = rng.random((15, d, d)) < 0.02
    gs = np.concatenate([dataset.g[None], np.where(flips, 1 - dataset.g, dataset.g)]) * (1 - np.eye(d))
    weights = gs * np.asarray(dataset.theta)
    mask = np.zeros_like(dataset.x, dtype=np.int32)
    cotangent = rng.random(len(gs))
    ref = LinearGaussian(n_vars=d)

    def both(x, w):
        direct = lambda w: jax.vmap(
            lambda wi: ref.log_likelihood(x=x, theta=wi, g=jnp.ones_like(wi), interv_targets=mask)
        )(w)
        gram = lambda w: linear_gaussian_log_likelihoods(x, mask, w, 0.1)
        return [(f(w), jax.grad(lambda w: f(w) @ cotangent.astype(w.dtype))(w)) for f in (direct, gram)]  # noqa: B023 - called at once, within the iteration

    with jax.enable_x64(True):
        (exact, exact_grad), _ = both(jnp.asarray(dataset.x, jnp.float64), jnp.asarray(weights, jnp.float64))
    (direct, direct_grad), (gram, gram_grad) = jax.jit(both)(dataset.x.astype(np.float32), weights.astype(np.float32))
    for name, a, b, e in (("values", gram, direct, exact), ("gradients", gram_grad, direct_grad, exact_grad)):
        e = np.asarray(e)
        gram_error, direct_error = np.abs(np.asarray(a) - e).max(), np.abs(np.asarray(b) - e).max()
        assert gram_error <= 4 * direct_error + 1e-6 * np.abs(e).max(), (name, gram_error, direct_error)


def test_soft_graph_sigmoid_equals_dibs_lib_form_at_extreme_draws():
    """σ(logit(u) + c) from u, and its derivative in c, against dibs-lib's sigmoid(logistic noise + c)
    in float64, over the whole range of draws (down to ``finfo.tiny``, which ``random.logistic``
    draws once in 2^23) and of logits (α(t)·scores reaches hundreds late in a run): finite, and equal
    to float32 rounding. (Differentiating the quotient gave NaN at u = tiny, c = 500.)"""
    tiny = np.finfo(np.float32).tiny
    u = np.array([tiny, 2.0**-23, 1e-3, 0.3, 0.5, 0.9, 1 - 2.0**-24], np.float32)
    c = np.array([-800.0, -60.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 60.0, 800.0], np.float32)
    uu, cc = (a.ravel() for a in np.meshgrid(u, c))
    ours = jax.jit(jax.vmap(jax.value_and_grad(sigmoid_of_logit_plus, argnums=1)))(uu, cc)
    with jax.enable_x64(True):
        logits = np.log(uu.astype(np.float64)) - np.log1p(-uu.astype(np.float64))
        ref = jax.vmap(jax.value_and_grad(lambda eps, c: jax.nn.sigmoid(eps + c), argnums=1))(
            logits, cc.astype(np.float64)
        )
    for a, e in zip(ours, ref):
        a, e = np.asarray(a, np.float64), np.asarray(e)
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("d", [5, 12], ids=["broadcast-products", "dot-products"])
def test_acyclicity_gradient_equals_dibs_lib(d):
    """∇_Z of the acyclicity prior (h's gradient written out, matrix powers as broadcast sums for
    small d) against JointDiBS's autodiff of ``jnp.linalg.matrix_power``, same keys: in float64 to
    1e-9, and in float32 to rounding."""
    for x64, rtol in ((True, 1e-9), (False, 1e-5)):
        with jax.enable_x64(x64):
            common = dict(
                x=jnp.zeros((3, d)),
                interv_mask=jnp.zeros((3, d), jnp.int32),
                n_acyclicity_mc_samples=16,
                latent_prior_std=1.0 / np.sqrt(d),
                graph_model=ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=1),
                likelihood_model=LinearGaussian(n_vars=d),
            )
            ref, fused = JointDiBS(**common), FusedJointDiBS(**common)
            z, _ = ref._sample_initial_random_particles(key=jax.random.PRNGKey(d), n_particles=4, n_dim=d)
            z = z.astype(jnp.result_type(float))
            keys = jax.random.split(jax.random.PRNGKey(1), 4)
            t = jnp.asarray(200)
            grads = [
                jax.jit(lambda z, dibs=dibs, keys=keys, t=t: dibs.eltwise_grad_latent_prior(z, keys, t))(z)
                for dibs in (fused, ref)
            ]
            assert grads[0].dtype == z.dtype
            assert_tree_close(grads[0], grads[1], rtol=rtol)


def test_masks_change_the_likelihood():
    """The interventional mask is used (a fused model ignoring it would pass the test above only
    if dibs-lib ignored it too)."""
    key, x, soft_g, mask = _inputs(5, masked=True)
    m = FusedDenseNonlinearGaussian(n_vars=5, hidden_layers=(5,))
    theta = m.sample_parameters(key=key, n_vars=5)
    assert m.log_likelihood(x=x, theta=theta, g=soft_g, interv_targets=mask) != pytest.approx(
        m.log_likelihood(x=x, theta=theta, g=soft_g, interv_targets=jnp.zeros_like(mask))
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_fused_estimators_equal_dibs_lib_estimators(model):
    """Same particles, same keys: ∇_Z (reparameterised) and ∇_Θ estimates agree with JointDiBS's.

    Compared in float64, where they agree to ~1e-12. In float32 they differ by ~2e-4 of the
    largest entry: the estimates weight the samples by softmax(log p(Θ, D | G_s)), and log p is a
    sum of ~10^3 terms whose float32 rounding moves the weights (the short runs below are float32)."""
    with jax.enable_x64(True):
        _compare_estimators(model, rtol=1e-9)


def _compare_estimators(model, rtol):
    ref_cls, fused_cls, kwargs = MODELS[model]
    d, n_particles = 6, 4
    key, x, _, mask = _inputs(d, masked=True, seed=1)
    x = x.astype(jnp.result_type(float))
    common = dict(
        x=x, interv_mask=mask, graph_model=ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=1), n_grad_mc_samples=16
    )
    ref = JointDiBS(likelihood_model=ref_cls(n_vars=d, **kwargs), **common)
    fused = FusedJointDiBS(likelihood_model=fused_cls(n_vars=d, **kwargs), **common)
    fused.particle_batch = 3  # a batch that does not divide the particles: lax.map's remainder path
    z, theta = ref._sample_initial_random_particles(key=key, n_particles=n_particles, n_dim=d)
    z, theta = jax.tree_util.tree_map(lambda a: a.astype(x.dtype), (z, theta))
    keys = jax.random.split(jax.random.PRNGKey(7), n_particles)
    t = jnp.asarray(50)

    @jax.jit
    def estimates(z, theta):
        base = jnp.zeros(n_particles, x.dtype)
        return [
            (
                dibs.eltwise_grad_z_likelihood(z, theta, base, t, keys)[0],
                dibs.eltwise_grad_theta_likelihood(z, theta, t, keys),
            )
            for dibs in (fused, ref)
        ]

    (dz, dtheta), (dz_ref, dtheta_ref) = estimates(z, theta)
    assert dz.dtype == x.dtype
    assert_tree_close(dz, dz_ref, rtol=rtol)
    assert_tree_close(dtheta, dtheta_ref, rtol=rtol)


def _short_fit(learner, impl, model_config):
    data = {
        "graph": {"type": "er", "n_vars": 5, "edges_per_node": 1},
        "model": model_config,
        "n_observations": 30,
        "n_ho_observations": 10,
        "interventions": {"n_sets": 0},
    }
    from harness.learners.svgd import Settings

    settings = Settings(
        steps=10, n_particles=3, n_grad_mc_samples=16, n_acyclicity_mc_samples=4, likelihood_impl=impl
    ).model_dump()
    problem = _dibs.Problem.build(data, settings, 5)
    dataset = make_dataset(data, seed=3)
    key = jax.random.PRNGKey(11)
    if learner == "svgd":
        return _dibs.fit_svgd(problem, 3, 10, dataset, key)
    return _dibs.fit_ensemble(problem, 3, 10, dataset, key)


@pytest.mark.parametrize(
    "learner, model",
    [
        ("svgd", {"type": "nonlinear_gaussian", "obs_noise": 0.1, "sig_param": 1.0, "hidden_layers": [5]}),
        ("ensemble", {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5}),
    ],
    ids=["svgd-nonlinear", "ensemble-linear"],
)
def test_short_runs_give_the_same_particles_as_dibs_lib_classes(learner, model):
    fast = _short_fit(learner, "fused", model)
    reference = _short_fit(learner, "dibs", model)
    # float32 rounding of the estimators' sample weights (see the estimator test), over 10 steps
    np.testing.assert_allclose(fast.z, reference.z, rtol=1e-3, atol=1e-4)
    assert_tree_close(fast.theta, reference.theta, rtol=1e-3)
    np.testing.assert_array_equal(fast.g, reference.g)


def test_likelihood_impl_selects_the_classes():
    model = {"type": "nonlinear_gaussian", "obs_noise": 0.1, "sig_param": 1.0, "hidden_layers": [5]}
    assert type(make_inference_model(model, 4, "dibs")) is DenseNonlinearGaussian
    assert type(make_inference_model(model, 4, "fused")) is FusedDenseNonlinearGaussian
    data = {"graph": {"type": "er", "n_vars": 4, "edges_per_node": 1}, "model": model}
    from harness.learners.svgd import Settings

    for impl, cls in (("dibs", JointDiBS), ("fused", FusedJointDiBS)):
        problem = _dibs.Problem.build(data, Settings(likelihood_impl=impl).model_dump(), 4)
        x = jnp.zeros((3, 4))
        assert type(problem.dibs(x, jnp.zeros((3, 4), jnp.int32))) is cls
