"""The one definition of every metric a case logs (see DESIGN.md, "Metrics").

- Particles whose graph is cyclic are dropped and the weights renormalised (``n_cyclic`` counts
  them). With none left: ``eshd`` = d(d-1)/2, ``auroc`` = 0.5, ``auprc`` = the edge density of G*,
  and the likelihood metrics score the empty graph with all parameters zero, as dibs-lib's
  ``neg_ave_log_likelihood`` does (dibs-lib then sums that one score over all M particles, with
  unnormalised weights; here it counts once, so the value does not depend on M).
- ``eshd`` = Σ_G w_G SHD(G, G*), a reversed edge counting once (dibs-lib's convention).
- ``auroc`` / ``auprc``: areas under the ROC and precision-recall curves of the edge marginals
  p_ij = Σ_G w_G G_ij against G*, over the d(d-1) off-diagonal entries only. ``auprc`` is the
  trapezoidal area under the PR curve, as dibs-lib's ``prc_auc``. When G* has no edge (or every
  edge) both are undefined: they are left out, the other metrics are computed, and the run is
  tagged ``metrics_not_logged`` with the reason (:func:`undefined_areas`); a case fails only if a
  threshold names them.
- ``n_edges`` = Σ_G w_G |edges(G)|, the expected number of edges (0 with no acyclic particle), to
  read beside the true graph's edge count (the run's ``truth_edges`` tag).
- ``auroc_diag``: the area under the ROC as dibs-lib's ``threshold_metrics`` and the DiBS paper compute
  it, over all d² entries, the d diagonal zeros counted as negatives (which raises it); logged
  beside ``auroc`` (where ``auroc`` is) only to compare with published numbers.
- ``negll_obs`` = −Σ_k w_k log p(x_ho | G_k, Θ_k): the likelihood without the parameter prior (not
  logged for real data without held-out rows).
- ``negll_intrv``: the same on each interventional set with the intervened nodes' terms masked
  out, averaged over the sets (not logged when a study has no interventional sets).

Two weightings of the particles, each giving every posterior metric above (``n_cyclic`` once):

- plain names use the learner's own weights (uniform for svgd and ensemble: "DiBS" in the paper);
- ``<metric>_mixture`` weights particle k by its unnormalised log p(Θ_k, D | G_k) = log p(Θ_k | G_k)
  + log p(D | G_k, Θ_k) on the training data (:func:`mixture_log_weights`; "DiBS+"), cyclic particles
  dropped and the rest renormalised with log-sum-exp in float64. That is dibs-lib's
  ``JointDiBS.get_mixture`` and the weighting of the paper's own evaluation (larslorch/dibs, branch
  ``full``: ``dibs/eval/joint_inference.py``, ``run_joint_svgd`` weights with
  ``log_joint_target_no_batch`` of ``dibs/eval/inference.py``): the graph prior p(G) is not part of
  it. For independently optimised members this is the "weighted ensemble".

Against the exact posterior (``data.exact_posterior``; :mod:`harness.exact.enumeration`), both weightings too:

- ``edge_mae``: mean |p_ij − p_exact(i → j | D)| over the d(d-1) off-diagonal entries;
- ``graph_tv``: total variation distance ½ Σ_G |q(G) − p(G | D)| between the learner's distribution
  over graphs q (its weighted acyclic particles, duplicates merged) and the exact posterior; a
  finite particle set cannot reach 0 unless the posterior is a point mass (the ``exact`` learner
  shows how low M exact samples go);
- ``graph_kl``: KL(q ‖ p(· | D)) = Σ_G q(G) log(q(G) / p(G | D)), finite since every DAG has
  positive posterior mass. It rewards collapsing onto the single most probable graph (a point mass
  there can beat an exact sampler), so no calibrated threshold uses it;
- ``exact_eshd``, ``exact_auroc``: ``eshd`` and ``auroc`` of the exact posterior itself, a
  reference beside the learner (not a bound: the true graph is not drawn from the prior the
  learners use, and DiBS's latent construction implies a slightly different graph prior).

With no acyclic particle, q is the empty graph (as for the other metrics): ``edge_mae`` is the
mean exact marginal, ``graph_tv`` = 1 − p(∅ | D), ``graph_kl`` = −log p(∅ | D).

A NaN or infinite value raises :class:`MetricError` naming the metric and why: it is never
logged silently.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.special import logsumexp
from sklearn import metrics as skm

from harness.data.dataset import Dataset
from harness.data.spec import freeze_section, thaw_section
from harness.exact.enumeration import ExactPosterior
from harness.models.choice import is_marginal
from harness.models.graphs import is_cyclic, parent_masks
from harness.models.posterior import Posterior


class MetricError(ArithmeticError):
    """A metric is NaN or infinite; the message says which and why."""


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


def undefined_areas(g_true: np.ndarray) -> str | None:
    """Why ``auroc`` and ``auprc`` cannot be computed against ``g_true``, or None when they can:
    with no possible edge present, or every one, one of the two classes is empty."""
    truth = off_diagonal(np.asarray(g_true))
    if truth.min() != truth.max():
        return None
    return (
        f"auroc, auprc, auroc_diag: the ground-truth graph has {'no' if truth.max() == 0 else 'every'} possible edge, "
        "so the areas under the ROC and precision-recall curves are undefined"
    )


def graph_metrics(post: Posterior, g_true: np.ndarray) -> dict[str, float]:
    """``eshd``, ``n_edges``, ``n_cyclic``, and ``auroc``, ``auprc`` and ``auroc_diag`` unless
    :func:`undefined_areas` says why not."""
    keep, g, lw = acyclic_part(post)
    d = g_true.shape[0]
    truth = off_diagonal(np.asarray(g_true))
    out = {"n_cyclic": int((~keep).sum())}
    areas = undefined_areas(g_true) is None
    if not keep.any():
        out |= {"eshd": d * (d - 1) / 2, "n_edges": 0.0}
        return out | ({"auroc": 0.5, "auroc_diag": 0.5, "auprc": float(truth.mean())} if areas else {})
    out["eshd"] = float(np.exp(lw) @ shd(g, g_true))
    out["n_edges"] = float(np.exp(lw) @ g.sum(axis=(1, 2)))
    if areas:
        out |= area_metrics(edge_marginals(g, lw), g_true)
    return out


def area_metrics(marginals: np.ndarray, g_true: np.ndarray) -> dict[str, float]:
    """``auroc``, ``auprc`` (off-diagonal entries) and ``auroc_diag`` (all d² entries, the DiBS
    paper's) of edge marginals [d, d] against ``g_true``."""
    truth, p = off_diagonal(np.asarray(g_true)), off_diagonal(marginals)
    precision, recall, _ = skm.precision_recall_curve(truth, p)
    return {
        "auroc": float(skm.roc_auc_score(truth, p)),
        "auprc": float(skm.auc(recall, precision)),
        "auroc_diag": float(skm.roc_auc_score(np.asarray(g_true).reshape(-1), marginals.reshape(-1))),
    }


def expected_shd_of_marginals(marginals: np.ndarray, g_true: np.ndarray) -> float:
    """E[SHD(G, G*)] of a distribution over DAGs from its edge marginals alone: SHD counts the pairs
    {i, j} whose state (no edge, i → j, j → i) differs from G*'s, and in a DAG the three states of a
    pair are exclusive, so E[SHD] = Σ_{i<j} (1 − p(G*'s state of the pair)). (The same number as
    ``graph_metrics``' weighted sum of ``shd``: tests/test_dynamic.py.)"""
    g_true = np.asarray(g_true)
    none = 1.0 - marginals - marginals.T
    p_true_state = np.where(g_true == 1, marginals, np.where(g_true.T == 1, marginals.T, none))
    upper = np.triu_indices(g_true.shape[0], k=1)
    return float(np.sum(1.0 - p_true_state[upper]))


def graph_distribution(post: Posterior) -> tuple[np.ndarray, np.ndarray]:
    """The learner's distribution over graphs: (distinct acyclic graphs [K, d, d], their log-probabilities
    [K]), duplicates merged; the empty graph when no particle is acyclic."""
    keep, g, lw = acyclic_part(post)
    if not keep.any():
        return np.zeros((1, *post.g.shape[1:]), dtype=np.int32), np.zeros(1)
    _, first, which = np.unique(parent_masks(g), axis=0, return_index=True, return_inverse=True)
    log_q = np.array([logsumexp(lw[which.ravel() == k]) for k in range(len(first))])
    return g[first], log_q


def exact_metrics(post: Posterior, exact: ExactPosterior) -> dict[str, float]:
    """``edge_mae``, ``graph_tv`` and ``graph_kl`` of ``post`` against the exact posterior."""
    g, log_q = graph_distribution(post)
    q = np.exp(log_q)
    log_p = exact.log_prob_of(g)
    p = np.exp(log_p)
    learner_marginals = edge_marginals(g, log_q)
    return {
        "edge_mae": float(np.abs(off_diagonal(learner_marginals - exact.edge_marginals)).mean()),
        # graphs outside the learner's support contribute their whole mass, 1 - Σ_support p
        "graph_tv": float(0.5 * (np.abs(q - p).sum() + max(0.0, 1.0 - p.sum()))),
        "graph_kl": float(q @ (log_q - log_p)),
    }


def exact_reference_metrics(exact: ExactPosterior, g_true: np.ndarray) -> dict[str, float]:
    """``exact_eshd`` and ``exact_auroc`` of the exact posterior itself, from its edge marginals
    (:func:`expected_shd_of_marginals`, :func:`area_metrics`): exact at any d."""
    out = {"exact_eshd": expected_shd_of_marginals(exact.edge_marginals, g_true)}
    if undefined_areas(g_true) is None:
        out["exact_auroc"] = area_metrics(exact.edge_marginals, g_true)["auroc"]
    return out


def likelihood_metrics(
    post: Posterior, dataset: Dataset, model_config: dict, likelihood_impl: str = "fused"
) -> dict[str, float]:
    """``negll_obs`` and (with interventional sets) ``negll_intrv``, with the learners' inference
    likelihood (``harness.models.likelihoods``; the same function whichever ``likelihood_impl``)."""
    import jax
    import jax.numpy as jnp

    if is_marginal(model_config):
        return marginal_likelihood_metrics(post, dataset, model_config)
    keep, g, lw = acyclic_part(post)
    theta = post.theta
    if keep.any():
        theta = jax.tree_util.tree_map(lambda a: np.asarray(a)[keep], theta)
    else:  # no DAG left: the empty graph with zero parameters (module docstring)
        g = np.zeros((1, *post.g.shape[1:]), dtype=post.g.dtype)
        theta = jax.tree_util.tree_map(lambda a: np.zeros_like(np.asarray(a)[:1]), theta)
        lw = np.zeros(1)

    loglik = _batched_log_density(freeze_section(model_config), dataset.n_vars, likelihood_impl)

    particle_ids = np.flatnonzero(keep) if keep.any() else np.array([-1])

    def negll(x, mask, what: str) -> float:
        ll = np.asarray(loglik(jnp.asarray(g, x.dtype), theta, jnp.asarray(x), jnp.asarray(mask)), np.float64)
        bad = ~np.isfinite(ll)
        if bad.any():
            raise MetricError(f"log-likelihood of {what} is NaN/inf for particles {particle_ids[bad].tolist()}")
        return float(-(np.exp(lw) @ ll))

    return held_out_negll(dataset, negll)


def held_out_negll(dataset: Dataset, negll) -> dict[str, float]:
    """``negll_obs`` on the held-out rows and ``negll_intrv``, the mean over the interventional
    sets, from ``negll(x, mask, what)`` (the model's weighted negative log-likelihood of rows ``x``)."""
    out = {}
    if len(dataset.x_ho):  # (real data may have no held-out rows: harness.tracking.case_runs.metrics_not_logged)
        out["negll_obs"] = negll(dataset.x_ho, np.zeros_like(dataset.x_ho, dtype=np.int32), "the held-out data")
    if dataset.interventions:
        out["negll_intrv"] = float(
            np.mean([negll(s.x, s.mask, f"interventional set {i}") for i, s in enumerate(dataset.interventions)])
        )
    return out


def marginal_log_likelihoods(g: np.ndarray, x: np.ndarray, mask: np.ndarray, model: dict) -> np.ndarray:
    """[M] log p(x | G_k) under a marginal model's closed-form likelihood with its prior
    hyperparameters (not conditioned on the training data): the sum over nodes of the local score
    of node j on the rows where j is not intervened upon, as dibs-lib's ``BGe.log_marginal_likelihood``
    (float64)."""
    from harness.models.scores import marginal_score

    d = x.shape[1]
    score = marginal_score(model, d)
    out = np.zeros(len(g))
    for j in range(d):
        rows = np.asarray(mask)[:, j] == 0
        if rows.any():
            stat, n = score.statistics(np.asarray(x, np.float64)[rows])
            out += np.asarray(score.local(stat, n, j, np.asarray(g)[:, :, j].astype(np.float64)), np.float64)
    return out


def marginal_likelihood_metrics(post: Posterior, dataset: Dataset, model: dict) -> dict[str, float]:
    """``negll_obs`` and ``negll_intrv`` under a marginal model, as the DiBS paper computes them
    (``neg_ave_log_marginal_likelihood``, ``dibs/eval/metrics.py``, larslorch/dibs branch ``full``):
    −Σ_G w_G log p(x_ho | G), the marginal likelihood of the held-out rows under the prior
    hyperparameters; for an interventional set, its intervened nodes' rows left out of their scores."""
    keep, g, lw = acyclic_part(post)
    if not keep.any():  # no DAG left: the empty graph (module docstring)
        g, lw = np.zeros((1, *post.g.shape[1:]), dtype=post.g.dtype), np.zeros(1)

    def negll(x, mask, _what: str) -> float:
        return float(-(np.exp(lw) @ marginal_log_likelihoods(g, x, mask, model)))

    return held_out_negll(dataset, negll)


@functools.cache
def _batched_log_density(model: tuple, n_vars: int, likelihood_impl: str, with_prior: bool = False):
    """log p(x | G_k, Θ_k), plus log p(Θ_k | G_k) ``with_prior``, for a batch of particles, jitted
    once per model (not once per case)."""
    import jax

    from harness.models.likelihoods import make_inference_model

    likelihood = make_inference_model(thaw_section(model), n_vars, likelihood_impl)

    def one(g1, th, x, mask):
        log_lik = likelihood.log_likelihood(x=x, theta=th, g=g1, interv_targets=mask)
        return log_lik + likelihood.log_prob_parameters(theta=th, g=g1) if with_prior else log_lik

    return jax.jit(jax.vmap(one, (0, 0, None, None)))


def mixture_log_weights(
    post: Posterior, dataset: Dataset, model_config: dict, likelihood_impl: str = "fused"
) -> np.ndarray:
    """[M] unnormalised DiBS+ log-weights log p(Θ_k | G_k) + log p(D | G_k, Θ_k), D the training
    data (observational), for every particle, cyclic ones included (the metrics drop those). Under a
    marginal model: log p(D | G_k), as dibs-lib's ``MarginalDiBS.get_mixture`` (no log p(G), as there),
    for every learner alike."""
    import jax.numpy as jnp

    if is_marginal(model_config):
        return marginal_log_likelihoods(post.g, dataset.x, np.zeros(dataset.x.shape, np.int32), model_config)

    log_joint = _batched_log_density(freeze_section(model_config), dataset.n_vars, likelihood_impl, with_prior=True)
    x = jnp.asarray(dataset.x)  # in the case's precision (inference.dtype)
    lw = np.asarray(log_joint(jnp.asarray(post.g, x.dtype), post.theta, x, jnp.zeros(x.shape, jnp.int32)), np.float64)
    bad = np.flatnonzero(~np.isfinite(lw))
    if bad.size:
        raise MetricError(f"the mixture weight log p(theta, D | G) is NaN/inf for particles {bad.tolist()}")
    return lw


def posterior_metrics(
    post: Posterior,
    dataset: Dataset,
    model_config: dict,
    likelihood_impl: str = "fused",
    exact: ExactPosterior | None = None,
) -> dict[str, float]:
    """The graph and likelihood metrics of ``post`` under its ``log_weights`` (and, given the exact
    posterior, :func:`exact_metrics`)."""
    out = graph_metrics(post, dataset.g) | likelihood_metrics(post, dataset, model_config, likelihood_impl)
    return out | exact_metrics(post, exact) if exact is not None else out


def compute_metrics(
    post: Posterior,
    dataset: Dataset,
    model_config: dict,
    likelihood_impl: str = "fused",
    exact: ExactPosterior | None = None,
    log_weights_mixture: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of a case, both weightings (module docstring), the mixture's with
    ``log_weights_mixture`` (default: :func:`mixture_log_weights`). Changes nothing it is given.
    Raises :class:`MetricError` if any is not finite."""
    check_finite_posterior(post)
    metrics = posterior_metrics(post, dataset, model_config, likelihood_impl, exact)
    if log_weights_mixture is None:
        log_weights_mixture = mixture_log_weights(post, dataset, model_config, likelihood_impl)
    mixture = dataclasses.replace(post, log_weights=log_weights_mixture)
    metrics |= {
        f"{k}_mixture": v
        for k, v in posterior_metrics(mixture, dataset, model_config, likelihood_impl, exact).items()
        if k != "n_cyclic"
    }
    if exact is not None:
        metrics |= exact_reference_metrics(exact, dataset.g)
    metrics |= {"fit_s": post.fit_s, "compile_s": post.compile_s, **post.diagnostics}
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        raise MetricError(f"non-finite metrics {bad}; kept (acyclic) particles: {int((~is_cyclic(post.g)).sum())}")
    return metrics


def check_finite_posterior(post: Posterior) -> None:
    """Fail with the particles and quantity at fault when a learner returned NaN or inf."""
    import jax

    bad_z = np.flatnonzero(~np.isfinite(post.z).all(axis=tuple(range(1, post.z.ndim)))) if post.z is not None else []
    if len(bad_z):
        raise MetricError(f"latent particles z are NaN/inf for particles {bad_z.tolist()}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(post.theta):
        leaf = np.asarray(leaf)
        bad = np.flatnonzero(~np.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1))
        if bad.size:
            raise MetricError(f"parameters theta{jax.tree_util.keystr(path)} are NaN/inf for particles {bad.tolist()}")
    if not np.isfinite(post.log_weights).all():
        raise MetricError(f"log_weights are NaN/inf: {post.log_weights.tolist()}")
