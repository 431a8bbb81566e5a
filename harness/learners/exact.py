"""``exact``: a perfect sampler, the reference for what ``n_particles`` samples can score.

Graphs are drawn i.i.d. from the exact posterior p(G | D) (:mod:`harness.exact.enumeration`, by enumeration),
Θ of each from the conjugate Gaussian p(Θ | G, D); uniform weights. Only in studies with
``data.exact_posterior: true`` (linear Gaussian synthetic data, n_vars ≤ 6). Its ``graph_tv`` and
``edge_mae`` show how close a finite sample of the true posterior comes: a learner with the same
budget cannot be expected to do better on average.
"""

from __future__ import annotations

import time

from pydantic import PositiveInt

from harness.data.spec import Strict


class Settings(Strict):
    n_particles: PositiveInt = 20


def check_data(data: dict) -> str | None:
    from harness.exact.enumeration import ENUMERATION_MAX_VARS

    if not data.get("exact_posterior"):
        return "the exact learner samples the exact posterior: set data.exact_posterior: true"
    if data["graph"]["n_vars"] > ENUMERATION_MAX_VARS:
        return (
            f"the exact learner draws from the enumerated posterior, n_vars <= {ENUMERATION_MAX_VARS} "
            f"(got {data['graph']['n_vars']}); above it the exact posterior is computed for the metrics only"
        )
    return None


def check_model(model: dict) -> str | None:
    return None  # any model the exact posterior takes (data.exact_posterior checks it)


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from harness.exact.enumeration import exact_posterior_of
    from harness.models.choice import is_marginal, learners_model
    from harness.models.graphs import graphs_of
    from harness.models.posterior import Posterior
    from harness.models.scores import sample_theta, sufficient_statistics

    start = time.perf_counter()
    m = settings.n_particles
    exact = exact_posterior_of(config, dataset.x)
    k_graphs, k_theta = jax.random.split(key)
    picks = np.asarray(jax.random.categorical(k_graphs, jnp.asarray(exact.log_prob), shape=(m,)))
    g = graphs_of(exact.parents[picks])
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_theta)))
    model = learners_model(config)
    theta = None  # a marginal model has none
    if not is_marginal(model):
        theta = sample_theta(rng, sufficient_statistics(dataset.x)[0], g, model).astype(dataset.x.dtype)
    return Posterior.of_graphs(g, theta, fit_s=time.perf_counter() - start)
