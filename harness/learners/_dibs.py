"""The DiBS machinery shared by ``svgd`` and ``ensemble``, compiled once per shape.

dibs-lib's ``JointDiBS.sample`` jits a step loop that captures the data as a constant, so every
new instance (every seed) recompiles. Here the ``JointDiBS`` object is built *inside* the traced
function from hashable settings, with the data as traced arguments: the compiled loop depends only
on the settings and the array shapes, and is reused (in memory, and across processes through
JAX's persistent cache) for every seed and data set of that shape.

Both learners use dibs-lib's gradient estimators (``eltwise_grad_z_likelihood``,
``eltwise_grad_theta_likelihood``, ``eltwise_grad_latent_prior``), optimiser and schedules; with
``likelihood_impl: fused`` (the default) the two likelihood estimators are computed in one pass each
(``_fused_dibs.FusedJointDiBS``) over the fused likelihoods of ``harness.models.likelihoods``, the same
functions to float32 rounding; ``likelihood_impl: dibs`` runs dibs-lib's classes unchanged.
``svgd`` applies dibs-lib's ``_svgd_step`` (kernel-weighted gradients plus repulsion);
``ensemble`` gives each member its own key and moves it along its own posterior gradient only.

Under a marginal model (``inference.model``, ``harness.models.choice``) the same machinery runs
dibs-lib's ``MarginalDiBS`` (particles Z alone, the kernel on Z with bandwidth ``h_latent``) over
the model's closed-form marginal likelihood: dibs-lib's ``BGe``, or the linear Gaussian with Θ
integrated out (:class:`MarginalLinearGaussianModel`). The loop states then hold no Θ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from dibs.inference import JointDiBS, MarginalDiBS
from jax.example_libraries import optimizers
from jax.tree_util import tree_map

from harness.data.dataset import Dataset
from harness.data.spec import freeze_section, thaw_section
from harness.data.synthetic import make_graph_model
from harness.learners._compiled import Timer, call_compiled, chunk_lengths
from harness.learners._fused_dibs import FusedJointDiBS, GradBatches
from harness.models.graphs import graphs_from_latents
from harness.models.likelihoods import make_inference_model
from harness.models.posterior import Posterior

DIBS_KEYS = (
    "optimizer",
    "alpha_linear",
    "beta_linear",
    "tau",
    "n_grad_mc_samples",
    "n_acyclicity_mc_samples",
    "grad_estimator_z",
    "score_function_baseline",
    "latent_prior_std",
)


@dataclass(frozen=True)
class Problem:
    """Everything that shapes the compiled computation, as hashable data (a jit static arg)."""

    graph: tuple
    model: tuple
    n_vars: int
    n_dim: int
    settings: tuple  # DiBS keyword arguments
    stepsize: float
    kernel: tuple = ()
    likelihood_impl: str = "fused"
    marginal: bool = False  # graphs alone under a closed-form marginal likelihood (MarginalDiBS)
    grad_batch: int | None = None  # rows per likelihood term of a gradient (None: all; ``_minibatch``)
    grad_batch_rescale: bool = False

    @classmethod
    def build(
        cls, data_config: dict, settings: dict, n_vars: int, model: dict | None = None, graph: dict | None = None
    ) -> Problem:
        """``model`` and ``graph``: the learners' model and graph prior (``harness.models.choice``),
        default the data's."""
        from harness.models.choice import is_marginal

        model = model or data_config["model"]
        kernel = tuple((k, settings[k]) for k in ("h_latent", "h_theta") if k in settings)
        return cls(
            graph=freeze_section(graph or data_config["graph"]),
            model=freeze_section(model),
            marginal=is_marginal(model),
            n_vars=n_vars,
            n_dim=settings.get("n_dim") or n_vars,
            settings=tuple((k, settings[k]) for k in DIBS_KEYS),
            stepsize=settings["stepsize"],
            kernel=kernel,
            likelihood_impl=settings["likelihood_impl"],
            grad_batch=settings.get("n_grad_batch_size"),
            grad_batch_rescale=settings.get("n_grad_batch_rescale", False),
        )

    def get_params(self, opt_state):
        """Parameters held in an optimiser state of this problem's optimiser (as dibs-lib builds it)."""
        make = optimizers.rmsprop if dict(self.settings)["optimizer"] == "rmsprop" else optimizers.sgd
        return make(self.stepsize).params_fn(opt_state)

    def dibs(self, x, interv_mask) -> JointDiBS | MarginalDiBS:
        """A JointDiBS (a MarginalDiBS under a marginal model) over (possibly traced) data ``x``."""
        kwargs = dict(self.settings)
        if kwargs["latent_prior_std"] is None:
            kwargs["latent_prior_std"] = 1.0 / np.sqrt(self.n_dim)
        if self.marginal:
            kernel = dict(self.kernel)
            dibs = MarginalDiBS(
                x=x,
                interv_mask=interv_mask,
                graph_model=make_graph_model(thaw_section(self.graph)),
                likelihood_model=marginal_likelihood_model(thaw_section(self.model), self.n_vars),
                optimizer_param={"stepsize": self.stepsize},
                **({"kernel_param": {"h": kernel["h_latent"]}} if "h_latent" in kernel else {}),
                **kwargs,
            )
            opt_init, dibs.opt_update, dibs.get_params = dibs.opt
            dibs.opt_init = opt_init
            return dibs
        extra = {"kernel_param": dict(self.kernel)} if self.kernel else {}
        cls = FusedJointDiBS if self.likelihood_impl == "fused" else JointDiBS
        likelihood_model = make_inference_model(thaw_section(self.model), self.n_vars, self.likelihood_impl)
        dibs = cls(
            x=x,
            interv_mask=interv_mask,
            graph_model=make_graph_model(thaw_section(self.graph)),
            likelihood_model=likelihood_model,
            optimizer_param={"stepsize": self.stepsize},
            **kwargs,
            **extra,
        )
        opt_init, dibs.opt_update, dibs.get_params = dibs.opt
        dibs.opt_init = opt_init
        batches = GradBatches.of(self.grad_batch, x.shape[0], self.grad_batch_rescale)
        if batches is not None:
            dibs.grad_batches = batches  # the fused estimators' batched likelihood
            dibs.log_joint_prob = batches.log_joint_prob(likelihood_model)  # dibs-lib's per-graph one
        return dibs


# ---------------------------------------------------------------------------------------------
# SVGD
# ---------------------------------------------------------------------------------------------


def svgd_init(problem: Problem, n_particles: int, key, x, mask):
    """Initial particles, drawn eagerly (dibs-lib's models build shapes from arrays, not jit-able)."""
    dibs = problem.dibs(x, mask)
    key, subk = jax.random.split(key)
    if problem.marginal:
        z = dibs._sample_initial_random_particles(key=subk, n_particles=n_particles, n_dim=problem.n_dim)
        return dibs.opt_init(z), key, jnp.zeros(n_particles)
    z, theta = dibs._sample_initial_random_particles(key=subk, n_particles=n_particles, n_dim=problem.n_dim)
    return dibs.opt_init(z), dibs.opt_init(theta), key, jnp.zeros(n_particles)


def svgd_loop(problem: Problem, t0, steps, state, x, mask):
    dibs = problem.dibs(x, mask)
    return jax.lax.fori_loop(t0, t0 + steps, lambda t, s: dibs._svgd_step(t, *s), state)


def fit_svgd(problem: Problem, n_particles: int, steps: int, dataset: Dataset, key, monitor=None) -> Posterior:
    x, mask = _data(dataset)
    timer = Timer()
    start = time.perf_counter()
    state = svgd_init(problem, n_particles, key, x, mask)
    state = run_chunked(svgd_loop, problem, steps, state, x, mask, timer, monitor)
    z, theta = read_particles(problem, state)
    return _posterior(z, theta, time.perf_counter() - start, timer)


def run_chunked(loop, problem: Problem, steps: int, state, x, mask, timer: Timer, monitor=None):
    """Run ``loop`` for ``steps`` steps in chunks (see ``harness.execution.monitor``), checking the monitor
    (deadline, progress, curves) between chunks. The first step and the chunk's length are arguments
    of the compiled loop, not constants: one executable per problem and shapes serves every chunk
    length and step count (the same steps, compiled fewer times)."""
    done = 0
    for n in chunk_lengths(steps, monitor.eval_every if monitor else None):
        step_range = (jnp.asarray(done, jnp.int32), jnp.asarray(n, jnp.int32))
        state = call_compiled(loop, (problem,), (*step_range, state, x, mask), timer)
        done += n
        if monitor is not None:
            state = jax.block_until_ready(state)
            monitor.after_chunk(done, steps, lambda: read_particles(problem, state))  # noqa: B023 - called at once, within the iteration
    return state


def read_particles(problem: Problem, state) -> tuple:
    """(z, theta) as numpy from a loop state (svgd's, or the ensemble's stacked member states);
    theta None under a marginal model."""
    return _params(problem, state[0]), None if problem.marginal else _params(problem, state[1])


# ---------------------------------------------------------------------------------------------
# Ensemble of independent particles
# ---------------------------------------------------------------------------------------------


def member_init(problem: Problem, key, x, mask):
    """One member's initial (z, theta, key): its own draw from svgd's initial distribution (theta
    None under a marginal model)."""
    dibs = problem.dibs(x, mask)
    key, subk = jax.random.split(key)
    if problem.marginal:
        z = dibs._sample_initial_random_particles(key=subk, n_particles=1, n_dim=problem.n_dim)
        return z[0], None, key
    z, theta = dibs._sample_initial_random_particles(key=subk, n_particles=1, n_dim=problem.n_dim)
    return z[0], tree_map(lambda a: a[0], theta), key


def ensemble_init(problem: Problem, keys, x, mask):
    """Optimiser states of all members (stacked), each drawn with its own key."""
    dibs = problem.dibs(x, mask)
    z, theta, keys = jax.vmap(member_init, (None, 0, None, None))(problem, keys, x, mask)
    if problem.marginal:
        return dibs.opt_init(z), keys, jnp.zeros(keys.shape[0])
    return dibs.opt_init(z), dibs.opt_init(theta), keys, jnp.zeros(keys.shape[0])


def ensemble_step(dibs: JointDiBS, t, state):
    """One optimiser step of every member along its own posterior gradient: no kernel, no
    repulsion. dibs-lib's estimators are element-wise over particles, so member m's update depends
    only on its own (z, theta) and its own key stream: the batch is M independent runs."""
    opt_z, opt_theta, keys, baselines = state
    z, theta = dibs.get_params(opt_z), dibs.get_params(opt_theta)
    keys, k_theta, k_z, k_prior = jax.vmap(member_step_keys)(keys)
    dtheta = dibs.eltwise_grad_theta_likelihood(z, theta, t, k_theta)
    dz_lik, baselines = dibs.eltwise_grad_z_likelihood(z, theta, baselines, t, k_z)
    dz_prior = dibs.eltwise_grad_latent_prior(z, k_prior, t)
    # the optimiser descends, so pass the negated ascent direction (as dibs-lib's SVGD does)
    opt_z = dibs.opt_update(t, -(dz_prior + dz_lik), opt_z)
    opt_theta = dibs.opt_update(t, tree_map(jnp.negative, dtheta), opt_theta)
    return opt_z, opt_theta, keys, baselines


def marginal_ensemble_step(dibs: MarginalDiBS, t, state):
    """:func:`ensemble_step` under a marginal model: Z alone, the keys split as
    ``MarginalDiBS._svgd_step`` splits them for one particle (twice: likelihood, then prior)."""
    opt_z, keys, baselines = state
    z = dibs.get_params(opt_z)
    keys, k_z = jax.vmap(jax.random.split, out_axes=1)(keys)
    keys, k_prior = jax.vmap(jax.random.split, out_axes=1)(keys)
    dz_lik, baselines = dibs.eltwise_grad_z_likelihood(z, None, baselines, t, k_z)
    dz_prior = dibs.eltwise_grad_latent_prior(z, k_prior, t)
    return dibs.opt_update(t, -(dz_prior + dz_lik), opt_z), keys, baselines


def member_step_keys(key):
    """(next key, Θ key, Z key, acyclicity key) of one member's step, split as dibs-lib's
    ``JointDiBS._svgd_step`` splits them for a single particle (``key, *sub = split(key, 2)`` three
    times): a member is then exactly a JointDiBS run of one particle with the member's key, up to
    SVGD's kernel factor k(x, x), which rmsprop divides out (tests/test_learners.py)."""
    key, k_theta = jax.random.split(key)
    key, k_z = jax.random.split(key)
    key, k_prior = jax.random.split(key)
    return key, k_theta, k_z, k_prior


def ensemble_loop(problem: Problem, t0, steps, states, x, mask):
    dibs = problem.dibs(x, mask)
    step = marginal_ensemble_step if problem.marginal else ensemble_step
    return jax.lax.fori_loop(t0, t0 + steps, lambda t, s: step(dibs, t, s), states)


def member_keys(key, n_members: int):
    return jax.random.split(key, n_members)


def fit_ensemble(problem: Problem, n_members: int, steps: int, dataset: Dataset, key, monitor=None) -> Posterior:
    """All members as one vectorised computation (one compiled loop over the stacked members)."""
    x, mask = _data(dataset)
    timer = Timer()
    start = time.perf_counter()
    states = ensemble_init(problem, member_keys(key, n_members), x, mask)
    states = run_chunked(ensemble_loop, problem, steps, states, x, mask, timer, monitor)
    z, theta = read_particles(problem, states)
    return _posterior(z, theta, time.perf_counter() - start, timer)


def fit_members_one_by_one(problem: Problem, n_members: int, steps: int, dataset: Dataset, key) -> Posterior:
    """Reference for tests: each member run alone (an ensemble of one), with the key it gets in
    ``fit_ensemble``."""
    x, mask = _data(dataset)
    timer = Timer()
    start = time.perf_counter()
    zs, thetas = [], []
    for member_key in member_keys(key, n_members):
        state = ensemble_init(problem, member_key[None], x, mask)
        state = run_chunked(ensemble_loop, problem, steps, state, x, mask, timer)
        z, theta = read_particles(problem, state)
        zs.append(z[0])
        thetas.append(None if theta is None else tree_map(lambda a: a[0], theta))
    theta = None if problem.marginal else tree_map(lambda *leaves: np.stack(leaves), *thetas)
    return _posterior(np.stack(zs), theta, time.perf_counter() - start, timer)


# ---------------------------------------------------------------------------------------------
# Marginal models
# ---------------------------------------------------------------------------------------------


class MarginalLinearGaussianModel:
    """The linear Gaussian model with Θ integrated out, with the one method ``MarginalDiBS`` calls:
    log p(D | G) as the sum of the closed-form local scores (``harness.models.scores``), each node's
    intervened rows left out (the training data here are observational)."""

    def __init__(self, n_vars: int, obs_noise: float, mean_edge: float, sig_edge: float):
        from harness.models.scores import LinearGaussianMarginal

        self.n_vars, self.score = n_vars, LinearGaussianMarginal(obs_noise, mean_edge, sig_edge)

    def interventional_log_marginal_prob(self, g, _theta, x, interv_targets, _rng):
        total = 0.0
        for j in range(self.n_vars):
            keep = (1 - interv_targets[:, j]).astype(x.dtype)[:, None]
            xj = x * keep
            stat, n = xj.T @ xj, keep.sum()
            total = total + self.score.local(stat, n, j, g[:, j].astype(x.dtype), xp=jnp)
        return total


def marginal_likelihood_model(model: dict, n_vars: int):
    """``MarginalDiBS``'s likelihood model for a marginal ``inference.model``: dibs-lib's ``BGe``
    (its traps avoided: an array ``mean_obs`` raises there, and ``alpha_mu`` 0 becomes 1.0, which the
    study schema refuses), or :class:`MarginalLinearGaussianModel`."""
    if model["type"] == "bge":
        from dibs.models import BGe

        from harness.models.scores import BGE_ALPHA_LAMBDA_ADD

        alpha_lambda = model.get("alpha_lambda") or n_vars + BGE_ALPHA_LAMBDA_ADD
        return BGe(
            n_vars=n_vars, alpha_mu=model["alpha_mu"], alpha_lambd=alpha_lambda, mean_obs=model["mean_obs"] or None
        )
    return MarginalLinearGaussianModel(n_vars, model["obs_noise"], model["mean_edge"], model["sig_edge"])


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _data(dataset: Dataset):
    x = jnp.asarray(dataset.x)  # in the case's precision (inference.dtype; harness.execution.run)
    return x, jnp.zeros(x.shape, dtype=jnp.int32)


def _params(problem: Problem, opt_state):
    return tree_map(np.asarray, problem.get_params(opt_state))


def _posterior(z: np.ndarray, theta, fit_s: float, timer: Timer) -> Posterior:
    return Posterior.of_graphs(
        graphs_from_latents(z), theta, z=z, fit_s=fit_s, compile_s=timer.compile_s, lower_s=timer.lower_s
    )
