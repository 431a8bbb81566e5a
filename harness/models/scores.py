"""Closed-form local scores: the linear Gaussian model with Θ integrated out, node by node.

The model is the learners' own: dibs-lib's ``LinearGaussian`` with the study's ``data.model``,
x_j = Σ_{i ∈ Pa(j)} Θ_ij x_i + ε_j with ε_j ~ N(0, obs_noise) and Θ_ij ~ N(mean_edge, sig_edge²)
on the present edges (its ``log_prob_parameters``; ``min_edge`` shapes only how dibs-lib *draws*
ground-truth weights, not the prior density the learners infer with). Θ integrates out per node:

    p(x_j | x_Pa) = N(x_j; mean_edge · X_Pa 1, obs_noise · I_N + sig_edge² · X_Pa X_Paᵀ),

computed from the sufficient statistics C = XᵀX with Woodbury's identity and the matrix
determinant lemma in a d × d form, masked by the parent set (:func:`local_log_marginal`), so one
function serves every parent set, in numpy (the exact posterior's tables) and in JAX (a sampler's
moves). :func:`sample_theta` draws Θ from the conjugate posterior p(Θ | G, D).

The BGe score (:func:`bge_local_log_marginal`, from :func:`bge_scatter`): the linear Gaussian
model with a normal-Wishart prior on the joint mean and precision, integrated out in closed form,
in the same masked form (one function for every parent set, numpy or JAX).

:func:`marginal_score` gives either as one object (``statistics(x)`` once per data set, then
``local(stat, n, j, mask, xp)`` per node and parent set): what the exact posterior and ``mc3`` score
with, whichever the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def sufficient_statistics(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(C = XᵀX in float64, N): all the closed forms need of the training rows."""
    x = np.asarray(x, dtype=np.float64)
    return x.T @ x, x.shape[0]


def _masked_precision(c, mask, obs_noise, sig_edge, xp):
    """A = I / sig_edge² + M C M / obs_noise for parent masks [..., d] (unmasked rows: 1/sig_edge² only)."""
    d = c.shape[-1]
    outer = mask[..., :, None] * mask[..., None, :]
    return xp.eye(d) / sig_edge**2 + outer * c / obs_noise


def local_log_marginal(c, n, j, mask, *, obs_noise: float, mean_edge: float, sig_edge: float, xp=np):
    """log p(x_j | x_Pa) with Θ integrated out, for node(s) ``j`` and parent masks ``mask`` [..., d]
    (0/1; ``mask[i] = 1`` for i → j), from C = XᵀX [d, d] and N rows. ``xp`` is numpy or jax.numpy.

    With r = x_j − mean_edge · X m and b = X_mᵀ r = M (c_j − mean_edge · C m):
    log N = −N/2 log 2π − 1/2 (N log σ² + d log s² + log det A) − 1/2 (rᵀr / σ² − bᵀ A⁻¹ b / σ⁴).
    """
    mask = xp.asarray(mask, dtype=c.dtype)
    d = c.shape[-1]
    c_j = c[:, j]  # Xᵀ x_j
    c_jj = c[j, j]
    cm = mask @ c  # [..., d]: (C m)ᵀ, C symmetric
    rr = c_jj - 2 * mean_edge * xp.sum(mask * c_j, axis=-1) + mean_edge**2 * xp.sum(cm * mask, axis=-1)
    b = mask * (c_j - mean_edge * cm)
    a = _masked_precision(c, mask, obs_noise, sig_edge, xp)
    _, logdet = xp.linalg.slogdet(a)
    quad = xp.sum(b * xp.linalg.solve(a, b[..., None])[..., 0], axis=-1)
    # d log s² + log det A (d x d, padded with 1/s²) = |Pa| log s² + log det of A's parent block
    return linear_gaussian_local_from_parts(n, rr, quad, d * math.log(sig_edge**2) + logdet, obs_noise=obs_noise)


def linear_gaussian_local_from_parts(n, rr, quad, scaled_logdet, *, obs_noise: float):
    """The formula of :func:`local_log_marginal` from its parts: rᵀr, bᵀA⁻¹b and |Pa| log s² + log det
    A_Pa (A's block on the parents), however they were computed (the dynamic programme computes them
    once per parent set for every node, ``harness.exact.dynamic``)."""
    return (
        -0.5 * n * math.log(2 * math.pi)
        - 0.5 * (n * math.log(obs_noise) + scaled_logdet)
        - 0.5 * (rr / obs_noise - quad / obs_noise**2)
    )


def theta_posterior(c, j: int, mask: np.ndarray, *, obs_noise: float, mean_edge: float, sig_edge: float):
    """Mean [d] and covariance [d, d] of p(Θ_{·j} | G, D) for parent mask ``mask`` [d] of node j
    (the conjugate Gaussian; entries of non-parents are 0 in both)."""
    mask = np.asarray(mask, dtype=np.float64)
    a = _masked_precision(c, mask, obs_noise, sig_edge, np)
    cov = np.linalg.inv(a) * np.outer(mask, mask)
    mean = cov @ (mean_edge * mask / sig_edge**2 + mask * c[:, j] / obs_noise)
    return mean, cov


def sample_theta(rng: np.random.Generator, c, graphs: np.ndarray, model: dict) -> np.ndarray:
    """One Θ [d, d] per graph in ``graphs`` [M, d, d], drawn from p(Θ | G, D) column by column (the
    conjugate posterior is computed once per node and parent set, however many graphs share it)."""
    m, d, _ = graphs.shape
    theta = np.zeros((m, d, d))
    keys = dict(obs_noise=model["obs_noise"], mean_edge=model["mean_edge"], sig_edge=model["sig_edge"])
    for j in range(d):
        parent_sets, which = np.unique(graphs[:, :, j], axis=0, return_inverse=True)
        for k, mask in enumerate(parent_sets):
            rows, idx = np.flatnonzero(which.ravel() == k), np.flatnonzero(mask)
            if idx.size:
                mean, cov = theta_posterior(c, j, mask, **keys)
                theta[rows[:, None], idx, j] = rng.multivariate_normal(mean[idx], cov[np.ix_(idx, idx)], size=len(rows))
    return theta


# ---------------------------------------------------------------------------------------------
# BGe: the linear Gaussian model with a normal-Wishart prior on the joint mean and precision
# ---------------------------------------------------------------------------------------------


def bge_scatter(x: np.ndarray, *, alpha_mu: float, alpha_lambda: float, mean_obs=0.0) -> tuple[np.ndarray, int]:
    """(R [d, d] in float64, N): what the BGe score needs of the training rows ``x`` [N, d]:
    R = T + S_N + N α_μ / (N + α_μ) (x̄ − ν)(x̄ − ν)ᵀ, with S_N the centred scatter matrix, ν the
    prior mean ``mean_obs`` and T = t·I, t = α_μ (α_λ − d − 1) / (α_μ + 1) (Geiger & Heckerman 2002;
    Kuipers, Moffa & Heckerman 2014, whose main text writes α_λ for α_μ in R and whose supplement has
    it right; dibs-lib's ``BGe`` notes the same)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    x_bar = x.mean(axis=0)
    centred = x - x_bar
    shift = x_bar - np.broadcast_to(np.asarray(mean_obs, dtype=np.float64), (d,))
    t = _bge_t(alpha_mu, alpha_lambda, d)
    return t * np.eye(d) + centred.T @ centred + (n * alpha_mu / (n + alpha_mu)) * np.outer(shift, shift), n


def _bge_t(alpha_mu: float, alpha_lambda: float, d: int) -> float:
    return alpha_mu * (alpha_lambda - d - 1) / (alpha_mu + 1)


def _masked_logdet(r, mask, xp):
    """log det of R restricted to the rows and columns in ``mask`` [..., d] (1 for the others)."""
    d = r.shape[-1]
    outer = mask[..., :, None] * mask[..., None, :]
    return xp.linalg.slogdet(outer * r + xp.eye(d) * (1 - mask)[..., None, :])[1]


def bge_local_log_marginal(r, n, j, mask, *, alpha_mu: float, alpha_lambda: float, xp=np):
    """The BGe local score log p(x_j | x_Pa) of node(s) ``j`` with parent masks ``mask`` [..., d]
    (0/1, ``mask[j] = 0``), from R and N of :func:`bge_scatter`; ``xp`` is numpy or jax.numpy.
    Summed over the nodes of a DAG it is the BGe marginal likelihood log p(D | G), which is score
    equivalent (Markov-equivalent DAGs score the same). With p = |Pa| and a = α_λ − d + p + 1:

    log Γ((N + a)/2) − log Γ(a/2) + ½ log(α_μ / (N + α_μ)) − (N/2) log π + ½ (a + p) log t
    + ½ (N + a − 1) log det R_PaPa − ½ (N + a) log det R_{Pa∪j}.
    """
    d = r.shape[-1]
    mask = xp.asarray(mask, dtype=r.dtype)
    with_j = xp.maximum(mask, xp.eye(d, dtype=r.dtype)[j])
    p = xp.sum(mask, axis=-1)
    return bge_local_from_logdets(
        n,
        d,
        p,
        _masked_logdet(r, mask, xp),
        _masked_logdet(r, with_j, xp),
        alpha_mu=alpha_mu,
        alpha_lambda=alpha_lambda,
        xp=xp,
    )


def bge_local_from_logdets(n, d: int, p, logdet_pa, logdet_pa_j, *, alpha_mu: float, alpha_lambda: float, xp=np):
    """The formula of :func:`bge_local_log_marginal` from |Pa| = ``p`` and the log-determinants of R
    on the parents and on the parents and j, however they were computed (the dynamic programme
    computes them once per parent set for every node, ``harness.exact.dynamic``)."""
    if xp is np:
        from scipy.special import gammaln
    else:
        from jax.scipy.special import gammaln
    a = alpha_lambda - d + p + 1
    t = _bge_t(alpha_mu, alpha_lambda, d)
    return (
        gammaln(0.5 * (n + a))
        - gammaln(0.5 * a)
        + 0.5 * (math.log(alpha_mu) - xp.log(n + alpha_mu))  # (n may be traced: mc3 passes it to its loop)
        - 0.5 * n * math.log(math.pi)
        + 0.5 * (a + p) * math.log(t)
        + 0.5 * (n + a - 1) * logdet_pa
        - 0.5 * (n + a) * logdet_pa_j
    )


# ---------------------------------------------------------------------------------------------
# One interface for both: what the exact posterior and mc3 score with
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearGaussianMarginal:
    """The linear Gaussian model's local score with Θ integrated out (:func:`local_log_marginal`);
    hashable, so a jit static argument."""

    obs_noise: float
    mean_edge: float
    sig_edge: float

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        return sufficient_statistics(x)

    def local(self, stat, n, j, mask, xp=np):
        return local_log_marginal(
            stat, n, j, mask, obs_noise=self.obs_noise, mean_edge=self.mean_edge, sig_edge=self.sig_edge, xp=xp
        )


@dataclass(frozen=True)
class BGeMarginal:
    """The BGe local score (:func:`bge_local_log_marginal`), the prior mean ``mean_obs`` the same for
    every variable; hashable, so a jit static argument."""

    alpha_mu: float
    alpha_lambda: float
    mean_obs: float = 0.0

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        return bge_scatter(x, alpha_mu=self.alpha_mu, alpha_lambda=self.alpha_lambda, mean_obs=self.mean_obs)

    def local(self, stat, n, j, mask, xp=np):
        return bge_local_log_marginal(stat, n, j, mask, alpha_mu=self.alpha_mu, alpha_lambda=self.alpha_lambda, xp=xp)


# the DiBS paper's BGe hyperparameters (larslorch/dibs, branch full, dibs/eval/parser.py:
# --bge_alpha_mu 1.0, --bge_alpha_lambd_add 2.0, i.e. alpha_lambda = d + 2; its targets take mean_obs = 0)
BGE_ALPHA_MU = 1.0
BGE_ALPHA_LAMBDA_ADD = 2.0


def marginal_score(model: dict, n_vars: int):
    """The closed-form local score of a model section: ``linear_gaussian`` (Θ integrated out) or
    ``bge`` (``alpha_mu``, ``alpha_lambda``, ``mean_obs``; absent ones the paper's)."""
    if model["type"] == "linear_gaussian":
        return LinearGaussianMarginal(model["obs_noise"], model["mean_edge"], model["sig_edge"])
    if model["type"] == "bge":
        alpha_lambda = model.get("alpha_lambda") or n_vars + BGE_ALPHA_LAMBDA_ADD
        if alpha_lambda <= n_vars + 1 or model.get("alpha_mu", BGE_ALPHA_MU) <= 0:
            raise ValueError(f"BGe needs alpha_mu > 0 and alpha_lambda > d + 1 = {n_vars + 1}")
        return BGeMarginal(
            float(model.get("alpha_mu", BGE_ALPHA_MU)), float(alpha_lambda), float(model.get("mean_obs", 0.0))
        )
    raise ValueError(f"model type {model['type']!r} has no closed-form marginal likelihood")
