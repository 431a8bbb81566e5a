"""The DiBS paper's bootstrap baselines (BGES*, BPC*): one DAG per bootstrap resample of the training
rows, learned by causal-learn (GES or PC), with maximum-likelihood linear Gaussian weights.

Source: larslorch/dibs, branch ``full``: ``dibs/bootstrap/bootstrap.py`` (resampling the rows with
replacement, ``NonparametricDAGBootstrap``), ``dibs/utils/graph.py`` (``random_consistent_expansion``:
Dor & Tarsi's algorithm with a random node order), ``dibs/bootstrap/learners.py``
(``compute_linear_gaussian_mle_params``) and ``dibs/eval/joint_inference.py`` (Θ from
``cov_mat = xᵀx / n`` of the whole training set, not of the resample). The paper called R's pcalg
through ``cdt``; here it is causal-learn (pure Python, no R).

From a CPDAG to a DAG (:func:`random_extension`): Dor & Tarsi (1992) with a random node order drawn
with the case's key, as the paper's code does: repeatedly take the first remaining node (in that
order) that has no directed edge out to a remaining node and whose undirected neighbours are each
adjacent to every other node adjacent to it, orient its undirected edges into it, remove it. Every
DAG of the equivalence class can come out (not uniformly). Two things a PC output can do that a
CPDAG cannot, with the rule applied to each (counted per case):

- ``bootstrap_conflicts``: resamples whose graph has conflicting orientations (causal-learn's i ↔ j,
  from two v-structures disagreeing): those edges are treated as undirected;
- ``bootstrap_fallbacks``: resamples whose PDAG has no consistent extension (Dor & Tarsi finds no
  valid node): the first remaining node without a directed edge out to a remaining node is taken
  anyway (its undirected edges oriented into it, possibly making a new v-structure); with no such
  node (a directed cycle), the first remaining node is taken and its directed edges out to the
  remaining nodes are dropped. The result is always a DAG (the removal order, reversed, is a
  topological order). The paper instead re-ran PC with alpha halved, up to 20 times, then dropped
  the resample; a fixed budget of particles is kept here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from harness.models.choice import is_marginal, learners_model
from harness.models.posterior import Posterior


def pdag_of(graph: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """causal-learn's endpoint matrix -> (directed [d, d] with i -> j, undirected [d, d] symmetric,
    whether any pair had conflicting orientations). causal-learn: ``graph[j, i] = 1`` and
    ``graph[i, j] = -1`` is i -> j; -1 both ways is i - j; 1 both ways is i <-> j."""
    directed = (graph.T == 1) & (graph == -1)
    undirected = (graph == -1) & (graph.T == -1)
    conflict = (graph == 1) & (graph.T == 1)
    return directed, undirected | conflict, bool(conflict.any())


def random_extension(directed: np.ndarray, undirected: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, bool]:
    """A DAG from a PDAG by Dor & Tarsi with node ``order`` (module docstring); (dag, fallback used)."""
    directed, undirected = directed.copy(), undirected.copy()
    dag = directed.copy()
    alive = np.ones(len(order), dtype=bool)
    fallback = False
    while alive.any():
        adjacent = (directed | directed.T | undirected) & alive[None, :] & alive[:, None]
        sinks = [i for i in order if alive[i] and not (directed[i] & alive).any()]
        valid = [
            i
            for i in sinks
            if all(
                not (adjacent[i] & ~adjacent[j] & (np.arange(len(order)) != j)).any()
                for j in np.flatnonzero(undirected[i] & alive)
            )
        ]
        if valid:
            i = valid[0]
        else:
            fallback = True
            i = sinks[0] if sinks else next(k for k in order if alive[k])
            dag[i, alive] = False  # (no-op for a sink) drop directed edges out to the remaining nodes
        for j in np.flatnonzero(undirected[i] & alive):
            dag[j, i], dag[i, j] = True, False
        undirected[i, :] = undirected[:, i] = False
        alive[i] = False
    return dag.astype(np.int32), fallback


def resamples(key, n_rows: int, n_vars: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [m, n_rows] of each bootstrap resample (with replacement) and node orders [m, n_vars]."""
    import jax

    rows, orders = [], []
    for k in jax.random.split(key, m):
        k_rows, k_order = jax.random.split(k)
        rows.append(np.asarray(jax.random.choice(k_rows, n_rows, (n_rows,), replace=True)))
        orders.append(np.asarray(jax.random.permutation(k_order, n_vars)))
    return np.stack(rows), np.stack(orders)


def mle_theta(x: np.ndarray, graphs: np.ndarray) -> np.ndarray:
    """[M, d, d] maximum-likelihood weights of each DAG: per node, the least-squares regression on its
    parents without intercept, from cov = xᵀx / n (the paper's ``compute_linear_gaussian_mle_params``
    on ``cov_mat = x.T @ x / n``)."""
    x = np.asarray(x, dtype=np.float64)
    cov = x.T @ x / x.shape[0]
    theta = np.zeros(graphs.shape)
    for k, g in enumerate(graphs):
        for j in range(g.shape[1]):
            pa = np.flatnonzero(g[:, j])
            if pa.size:
                theta[k, pa, j] = np.linalg.solve(cov[np.ix_(pa, pa)], cov[pa, j])
    return theta


def fit_case(dataset, config: dict, key, n_particles: int, learn: Callable[[np.ndarray], np.ndarray]) -> Posterior:
    """A bootstrap learner's ``fit``: :func:`fit_bootstrap` with Θ unless the learners' model is
    marginal (graphs alone)."""
    return fit_bootstrap(dataset, key, n_particles, learn, with_theta=not is_marginal(learners_model(config)))


def fit_bootstrap(
    dataset, key, n_particles: int, learn: Callable[[np.ndarray], np.ndarray], with_theta: bool = True
) -> Posterior:
    """``n_particles`` DAGs, each ``learn(x_resample)`` (causal-learn's endpoint matrix) extended to a
    DAG; Θ by maximum likelihood on the whole training set (none without ``with_theta``: a marginal
    model); uniform weights."""
    start = time.perf_counter()
    x = np.asarray(dataset.x, dtype=np.float64)
    rows, orders = resamples(key, x.shape[0], x.shape[1], n_particles)
    graphs, conflicts, fallbacks = [], 0, 0
    for r, order in zip(rows, orders):
        directed, undirected, conflict = pdag_of(learn(x[r]))
        dag, fallback = random_extension(directed, undirected, order)
        graphs.append(dag)
        conflicts += conflict
        fallbacks += fallback
    g = np.stack(graphs)
    return Posterior.of_graphs(
        g,
        mle_theta(x, g).astype(dataset.x.dtype) if with_theta else None,
        fit_s=time.perf_counter() - start,
        diagnostics={"bootstrap_conflicts": float(conflicts), "bootstrap_fallbacks": float(fallbacks)},
    )


def linear_gaussian_only(name: str):
    """``check_model`` of a bootstrap learner: the linear Gaussian model (Θ by maximum likelihood), or
    a marginal model (graphs alone, whatever generated the data)."""

    def check_model(model: dict) -> str | None:
        if model["type"] != "linear_gaussian" and not is_marginal(model):
            return (
                f"{name} is a linear Gaussian baseline (BIC / Fisher-z, maximum-likelihood linear weights), as in "
                f"the DiBS paper; model type {model['type']!r} is not supported: expected linear_gaussian, or a "
                "marginal inference.model (graphs alone)"
            )
        return None

    return check_model
