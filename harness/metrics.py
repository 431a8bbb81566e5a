"""The one definition of every metric a case logs (see DESIGN.md, "Metrics").

- Particles whose graph is cyclic are dropped and the weights renormalised (``n_cyclic`` counts
  them). With none left: ``eshd`` = d(d-1)/2, ``auroc`` = 0.5, ``auprc`` = the edge density of G*,
  and the likelihood metrics use the empty graph.
- ``eshd`` = Σ_G w_G SHD(G, G*), a reversed edge counting once (dibs-lib's convention).
- ``auroc`` / ``auprc``: areas under the ROC and precision-recall curves of the edge marginals
  p_ij = Σ_G w_G G_ij against G*, over the d(d-1) off-diagonal entries only. ``auprc`` is the
  trapezoidal area under the PR curve, as dibs-lib's ``prc_auc``.
- ``negll_obs`` = −Σ_k w_k log p(x_ho | G_k, Θ_k): the likelihood without the parameter prior.
- ``negll_intrv``: the same on each interventional set with the intervened nodes' terms masked
  out, averaged over the sets (not logged when a study has no interventional sets).

A NaN or infinite value raises :class:`MetricError` naming the metric and why: it is never
logged silently.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import logsumexp
from sklearn import metrics as skm

from harness.data import Dataset, freeze_section, thaw_section
from harness.posterior import Posterior


class MetricError(ArithmeticError):
    """A metric is NaN or infinite; the message says which and why."""


def is_cyclic(g: np.ndarray) -> np.ndarray:
    """[M] booleans: whether each graph in ``g`` [M, d, d] has a directed cycle."""
    g = np.asarray(g, dtype=bool)
    d = g.shape[-1]
    reach = g.copy()
    for _ in range(int(np.ceil(np.log2(max(d, 2))))):  # paths up to length 2^k >= d
        reach = reach | (np.einsum("mij,mjk->mik", reach.astype(np.int32), reach.astype(np.int32)) > 0)
    return np.diagonal(reach, axis1=-2, axis2=-1).any(axis=-1)


def acyclic_part(post: Posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep mask, graphs kept, renormalised log-weights of those kept)."""
    keep = ~is_cyclic(post.g)
    lw = np.asarray(post.log_weights, dtype=np.float64)[keep]
    return keep, post.g[keep], lw - logsumexp(lw) if keep.any() else lw


def shd(g: np.ndarray, g_true: np.ndarray) -> np.ndarray:
    """SHD of each graph in ``g`` [M, d, d] to ``g_true`` [d, d]; a reversed edge counts once."""
    diff = np.abs(np.asarray(g, dtype=np.int64) - np.asarray(g_true, dtype=np.int64)[None])
    diff = np.minimum(diff + diff.transpose(0, 2, 1), 1)
    return diff.sum(axis=(1, 2)) / 2


def edge_marginals(g: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """p_ij = Σ_G w_G G_ij, [d, d]."""
    w = np.exp(log_weights)
    return np.einsum("m,mij->ij", w, np.asarray(g, dtype=np.float64))


def off_diagonal(a: np.ndarray) -> np.ndarray:
    d = a.shape[-1]
    return a[~np.eye(d, dtype=bool)]


def graph_metrics(post: Posterior, g_true: np.ndarray) -> dict[str, float]:
    """``eshd``, ``auroc``, ``auprc`` and ``n_cyclic``."""
    keep, g, lw = acyclic_part(post)
    d = g_true.shape[0]
    truth = off_diagonal(np.asarray(g_true))
    out = {"n_cyclic": int((~keep).sum())}
    if not keep.any():
        return out | {"eshd": d * (d - 1) / 2, "auroc": 0.5, "auprc": float(truth.mean())}
    p = off_diagonal(edge_marginals(g, lw))
    if truth.min() == truth.max():
        raise MetricError(
            f"auroc/auprc: the ground-truth graph has {'no' if truth.max() == 0 else 'every'} "
            "possible edge, so the areas are undefined"
        )
    precision, recall, _ = skm.precision_recall_curve(truth, p)
    return out | {
        "eshd": float(np.exp(lw) @ shd(g, g_true)),
        "auroc": float(skm.roc_auc_score(truth, p)),
        "auprc": float(skm.auc(recall, precision)),
    }


def likelihood_metrics(post: Posterior, dataset: Dataset, model_config: dict,
                       likelihood_impl: str = "fused") -> dict[str, float]:
    """``negll_obs`` and (with interventional sets) ``negll_intrv``, with the learners' inference
    likelihood (``harness.likelihoods``; the same function whichever ``likelihood_impl``)."""
    import jax
    import jax.numpy as jnp

    keep, g, lw = acyclic_part(post)
    theta = post.theta
    if keep.any():
        theta = jax.tree_util.tree_map(lambda a: np.asarray(a)[keep], theta)
    else:  # the empty graph, with the first particle's parameters
        g = np.zeros((1, *post.g.shape[1:]), dtype=post.g.dtype)
        theta = jax.tree_util.tree_map(lambda a: np.asarray(a)[:1], theta)
        lw = np.zeros(1)

    loglik = _batched_log_likelihood(freeze_section(model_config), dataset.n_vars, likelihood_impl)

    particle_ids = np.flatnonzero(keep) if keep.any() else np.array([-1])

    def negll(x, mask, what: str) -> float:
        ll = np.asarray(loglik(jnp.asarray(g, jnp.float32), theta, jnp.asarray(x), jnp.asarray(mask)), np.float64)
        bad = ~np.isfinite(ll)
        if bad.any():
            raise MetricError(f"log-likelihood of {what} is NaN/inf for particles {particle_ids[bad].tolist()}")
        return float(-(np.exp(lw) @ ll))

    out = {"negll_obs": negll(dataset.x_ho, np.zeros_like(dataset.x_ho, dtype=np.int32), "the held-out data")}
    if dataset.interventions:
        out["negll_intrv"] = float(np.mean([
            negll(s.x, s.mask, f"interventional set {i}") for i, s in enumerate(dataset.interventions)
        ]))
    return out


@functools.lru_cache(maxsize=None)
def _batched_log_likelihood(model: tuple, n_vars: int, likelihood_impl: str):
    """log p(x | G_k, Θ_k) for a batch of particles, jitted once per model (not once per case)."""
    import jax

    from harness.likelihoods import make_inference_model

    likelihood = make_inference_model(thaw_section(model), n_vars, likelihood_impl)
    return jax.jit(
        jax.vmap(
            lambda g1, th, x, mask: likelihood.log_likelihood(x=x, theta=th, g=g1, interv_targets=mask),
            (0, 0, None, None),
        )
    )


def compute_metrics(post: Posterior, dataset: Dataset, model_config: dict,
                    likelihood_impl: str = "fused") -> dict[str, float]:
    """All metrics of a case; raises :class:`MetricError` if any is not finite."""
    check_finite_posterior(post)
    metrics = graph_metrics(post, dataset.g) | likelihood_metrics(post, dataset, model_config, likelihood_impl)
    metrics |= {"fit_s": post.fit_s, "compile_s": post.compile_s}
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        raise MetricError(f"non-finite metrics {bad}; kept (acyclic) particles: {int((~is_cyclic(post.g)).sum())}")
    return metrics


def check_finite_posterior(post: Posterior) -> None:
    """Fail with the particles and quantity at fault when a learner returned NaN or inf."""
    import jax

    bad_z = np.flatnonzero(~np.isfinite(post.z).all(axis=tuple(range(1, post.z.ndim))))
    if bad_z.size:
        raise MetricError(f"latent particles z are NaN/inf for particles {bad_z.tolist()}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(post.theta):
        leaf = np.asarray(leaf)
        bad = np.flatnonzero(~np.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1))
        if bad.size:
            raise MetricError(
                f"parameters theta{jax.tree_util.keystr(path)} are NaN/inf for particles {bad.tolist()}"
            )
    if not np.isfinite(post.log_weights).all():
        raise MetricError(f"log_weights are NaN/inf: {post.log_weights.tolist()}")
