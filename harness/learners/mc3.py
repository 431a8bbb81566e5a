"""``mc3``: structure MCMC (MC³) over DAGs on the marginal posterior p(G | D), Θ integrated out in closed form.

Not the DiBS paper's joint baseline: the paper ran MC³ on graphs alone only in its marginal (BGe)
experiment (larslorch/dibs, branch ``full``, ``config/baselines.py``, ``struct_mcmc_config["bge"]``);
its joint experiments used M-MC³ (one Metropolis-Hastings move on the graph and Θ together) and
G-MC³ (Metropolis-within-Gibbs: a graph move given Θ, then a Θ move given the graph), both in
``dibs/mcmc/joint_structure.py`` and not built here. Integrating Θ out makes ``mc3`` a stronger
sampler of p(G | D) than either.

``n_chains`` chains start at the empty graph and run as one vectorised, jitted loop
(``_mc3``: add / delete / reverse moves among the acyclic ones, Metropolis-Hastings with the
Hastings correction for the neighbourhood sizes). Each chain discards ``burnin`` steps, then keeps
one graph every ``thin`` steps: ``n_particles`` graphs in all (the budget, as svgd's
``n_particles``), so a chain runs ``burnin + thin * n_particles / n_chains`` steps. The target is
the closed-form linear Gaussian marginal posterior of ``harness.exact.enumeration`` (the learners' model and
graph prior), at any d. Θ of each kept graph is drawn from the conjugate p(Θ | G, D), so every
metric works. Uniform weights.

Linear Gaussian models only: a nonlinear model has no closed-form marginal likelihood, and the
joint samplers it would need (M-MC³, G-MC³) are not built; refused at collection. Logs
``mc3_acceptance``, ``mc3_ess`` and ``mc3_ess_edges`` (``_mc3.diagnostics``). The default thinning,
100, is enough for the small studies here (``mc3_ess`` tells); the paper's own values are burn-in
1e5 and thinning 1e4 at d = 20 and 50 (``config/baselines.py``, which overrides the evaluation
script's defaults, ``dibs/eval/parser.py``: ``--mcmc_burnin 1e4``, ``--mcmc_thinning 1e3``).
"""

from __future__ import annotations

import time

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from harness.data.spec import Strict

CHUNK_STEPS = 20_000  # steps per compiled call: the deadline and progress are checked in between


class Settings(Strict):
    n_particles: PositiveInt = Field(20, description="kept samples in all chains together (the budget)")
    n_chains: PositiveInt = 4
    burnin: NonNegativeInt = Field(10_000, description="steps per chain discarded")
    thin: PositiveInt = Field(100, description="keep every thin-th step")

    @model_validator(mode="after")
    def _whole_chains(self):
        if self.n_particles % self.n_chains:
            raise ValueError(
                f"n_particles ({self.n_particles}) must be a multiple of n_chains ({self.n_chains}): "
                "every chain keeps n_particles / n_chains samples"
            )
        if self.n_particles // self.n_chains < 4:
            raise ValueError(
                f"n_particles / n_chains = {self.n_particles // self.n_chains}: every chain must keep at "
                "least 4 samples (the effective sample size needs them)"
            )
        return self

    @property
    def steps_per_chain(self) -> int:
        return self.burnin + self.thin * self.n_particles // self.n_chains


def check_model(model: dict) -> str | None:
    """The learners' model (``harness.models.choice``): one with a closed-form marginal likelihood."""
    if model["type"] not in ("linear_gaussian", "bge"):
        return (
            "mc3 samples the marginal posterior with a closed-form score; for "
            f"model type {model['type']!r} it would need a joint sampler over the graph and Θ (the "
            "paper's M-MC³ or G-MC³), which is not built: expected linear_gaussian, or inference.model: {type: bge}"
        )
    return None


def target_of(config: dict, n_vars: int, hastings: bool = True):
    from harness.learners._mc3 import Target
    from harness.models.choice import learners_graph_prior, learners_model
    from harness.models.graph_priors import log_graph_prior_table
    from harness.models.scores import marginal_score

    return Target(
        n_vars=n_vars,
        score=marginal_score(learners_model(config), n_vars),
        prior=tuple(log_graph_prior_table(learners_graph_prior(config), n_vars)),
        hastings=hastings,
    )


def fit(dataset, config: dict, settings: Settings, key, monitor=None, hastings: bool = True):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from harness.learners import _mc3
    from harness.learners._compiled import Timer, call_compiled
    from harness.models.choice import is_marginal, learners_model
    from harness.models.posterior import Posterior
    from harness.models.scores import sample_theta

    start, timer = time.perf_counter(), Timer()
    d = dataset.n_vars
    target = target_of(config, d, hastings)
    c64, n = target.score.statistics(dataset.x)  # (the linear Gaussian's, XᵀX, is what sample_theta takes)
    c, n = jnp.asarray(c64, dataset.x.dtype), jnp.asarray(n, dataset.x.dtype)  # the case's precision
    k_chains, k_theta = jax.random.split(key)
    states = call_compiled(_mc3.init_chains, (target,), (jax.random.split(k_chains, settings.n_chains), c, n), timer)
    done, total = 0, settings.steps_per_chain
    for steps in _mc3.chain_sizes(settings.burnin, CHUNK_STEPS):
        states = call_compiled(_mc3.advance, (target,), (jnp.asarray(steps, jnp.int32), states, c, n), timer)
        done += steps
        if monitor is not None:
            monitor.after_chunk(done, total, lambda: (None, None))
    states = _mc3.reset_acceptance(states)
    per_chain = settings.n_particles // settings.n_chains
    keep_per_call = max(1, CHUNK_STEPS // settings.thin)
    graphs, traces = [], []
    for n_keep in _mc3.chain_sizes(per_chain, keep_per_call):
        states, g, trace = call_compiled(
            _mc3.collect, (target, n_keep), (jnp.asarray(settings.thin, jnp.int32), states, c, n), timer
        )
        graphs.append(np.asarray(g))
        traces.append(np.asarray(trace))
        done += n_keep * settings.thin
        if monitor is not None:
            monitor.after_chunk(done, total, lambda: (None, None))
    graphs = np.concatenate(graphs, axis=1)  # [chains, per_chain, d, d]
    trace = np.concatenate(traces, axis=1)
    diagnostics = _mc3.diagnostics(graphs, trace, np.asarray(states[5]), settings.thin * per_chain)
    g = graphs.reshape(-1, d, d).astype(np.int32)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_theta)))
    model = learners_model(config)
    theta = None if is_marginal(model) else sample_theta(rng, c64, g, model).astype(dataset.x.dtype)
    return Posterior.of_graphs(
        g,
        theta,
        fit_s=time.perf_counter() - start,
        compile_s=timer.compile_s,
        lower_s=timer.lower_s,
        diagnostics=diagnostics,
    )
