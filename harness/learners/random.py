"""``random``: a chance-level reference, random DAGs at the prior's edge density.

Each particle is a DAG from the learners' graph prior (``harness.models.choice``: the data's ER or
SF model with its ``edges_per_node``, or ``inference.graph_prior``) and parameters from the learners'
likelihood model's prior (none under a marginal model). It needs no compilation, which makes it the learner of choice for fast harness tests.
"""

from __future__ import annotations

import time

from pydantic import PositiveInt

from harness.data.spec import Strict


class Settings(Strict):
    n_particles: PositiveInt = 20


def check_model(model: dict) -> str | None:
    return None  # any: under a marginal model (``inference.model``) the graphs come without Θ


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    import jax
    import numpy as np
    from dibs.graph_utils import graph_to_mat

    from harness.data.synthetic import make_graph_model, make_likelihood_model
    from harness.models.choice import is_marginal, learners_graph_prior, learners_model
    from harness.models.posterior import Posterior

    start = time.perf_counter()
    d, m = dataset.n_vars, settings.n_particles
    graph_model = make_graph_model(learners_graph_prior(config))
    k_graphs, k_theta = jax.random.split(key)
    g = np.stack([np.asarray(graph_to_mat(graph_model.sample_G(k))) for k in jax.random.split(k_graphs, m)])
    g = g.astype(np.int32)
    theta = None  # a marginal model (inference.model) has none
    if not is_marginal(learners_model(config)):
        model = make_likelihood_model(learners_model(config), d)
        theta = jax.tree_util.tree_map(np.asarray, model.sample_parameters(key=k_theta, n_vars=d, n_particles=m))
    return Posterior.of_graphs(g, theta, fit_s=time.perf_counter() - start)
