"""Inference likelihoods: dibs-lib's functions, computed in a form that uses the hardware well.

The learners differentiate ``interventional_log_joint_prob(g, theta, x, mask)`` with respect to
Θ (for hard graph samples) and to a soft graph G ∈ [0, 1]^{d×d} (the Gumbel-softmax estimator of
∇_Z), vmapped over particles and 128 graph samples each. The classes here compute *exactly* the
same function as dibs-lib's models, so data generation, parameter sampling and the graph prior
stay dibs-lib's (they are subclasses); only the likelihood (and the nonlinear model's parameter
prior, as one product for many graphs) is rewritten:

- ``FusedDenseNonlinearGaussian``: dibs-lib masks the *inputs* per node (``x[None] * g.T[:, :,
  None]``, a ``[d, N, d]`` copy of the data per graph) and runs d small MLPs on them. Masking the
  first layer's *weights* instead (``W1[j, i, :] * g[i, j]``) gives the same pre-activations,
  ``Σ_i x[n, i] g[i, j] W1[j, i, h]``, as one contraction of the data with all nodes' weights at
  once. Under ``vmap`` over graph samples the data are shared, so XLA emits one large matrix
  product instead of d·(samples) tiny ones and no ``[d, N, d]`` copies (forward or backward).
  For the estimators, ``interventional_log_joint_probs`` takes all S graph samples of a particle at
  once; with one hidden layer (the DiBS paper's model) it runs ``one_hidden_layer_log_likelihoods``,
  a hand-written forward and reverse pass laid out for XLA:CPU (see its docstring).
- ``FusedLinearGaussian``: dibs-lib's ``x @ (g * theta)`` is already one matrix product; the class
  is here so that both models go through one switch, and computes the same expression.

Equality with dibs-lib (values, ∇_Θ and ∇_G, with and without interventional masks, several d)
is tested in ``tests/test_likelihoods.py``. ``inference: {likelihood_impl: dibs}`` selects
dibs-lib's own classes (the reference path).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from dibs.models import DenseNonlinearGaussian, LinearGaussian
from jax.scipy.stats import norm as jax_normal

IMPLEMENTATIONS = ("fused", "dibs")


def gaussian_log_likelihood(x, means, obs_noise, interv_targets, axis=None):
    """Σ over samples and non-intervened nodes of log N(x | means, obs_noise), as dibs-lib sums it
    (over ``axis``; all axes by default)."""
    logpdf = jax_normal.logpdf(x=x, loc=means, scale=jnp.sqrt(obs_noise))
    return jnp.sum(jnp.where(interv_targets, 0.0, logpdf), axis=axis)


class FusedLinearGaussian(LinearGaussian):
    """dibs-lib's ``LinearGaussian`` (same parameters, prior and sampler)."""

    def log_likelihood(self, *, x, theta, g, interv_targets):
        assert x.shape == interv_targets.shape
        return gaussian_log_likelihood(x, x @ (g * theta), self.obs_noise, interv_targets)

    def interventional_log_joint_probs(self, gs, theta, x, interv_targets, likelihood_scale=None):
        """[S] log p(Θ, D | G_s) for graphs ``gs`` [S, d, d] sharing Θ: dibs-lib's prior
        Σ g ⊙ log N(Θ) as one product for all graphs, plus ``linear_gaussian_log_likelihoods``
        (times ``likelihood_scale`` where given: a minibatch's N / B)."""
        log_prior = jax_normal.logpdf(x=theta, loc=self.mean_edge, scale=self.sig_edge)
        priors = gs.reshape(gs.shape[0], -1) @ log_prior.reshape(-1)
        return priors + _scaled(
            linear_gaussian_log_likelihoods(x, interv_targets, gs * theta, self.obs_noise), likelihood_scale
        )


def _scaled(log_likelihoods, scale):
    return log_likelihoods if scale is None or scale == 1.0 else scale * log_likelihoods


def linear_gaussian_log_likelihoods(x, interv_targets, weights, obs_noise):
    """[S] Σ_n Σ_j [node j not intervened in row n] log N(x_nj | x_n · W_s[:, j], obs_noise) for
    weight matrices ``weights`` [S, d, d]: dibs-lib's linear Gaussian likelihood, computed from the
    data's Gram matrices instead of the N × d residuals of every graph.

    Node j's residual sum of squares is uᵀ C_j u with u = W_s[:, j] − e_j and C_j = Σ_n x_n x_nᵀ
    over the rows where j is not intervened, so a graph costs d³ operations instead of N·d², and
    the S·N·d residual tensor of the direct form (forward and reverse) is never built: on small
    problems that tensor's memory traffic, not arithmetic, set the step's time. Rounding differs
    from the direct sum (``tests/test_likelihoods.py`` bounds the difference at data scales of the
    studies)."""
    keep = jnp.where(interv_targets, 0.0, 1.0).astype(x.dtype)  # [N, d]
    gram = jnp.einsum("nj,ni,nk->jik", keep, x, x)  # [d, d, d]: C_j, one per node
    residual_weights = weights - jnp.eye(x.shape[1], dtype=x.dtype)  # [S, i, j]: column j is u
    rss = jnp.einsum("sij,jik,skj->sj", residual_weights, gram, residual_weights)  # [S, d]
    n_kept = jnp.sum(keep, axis=0)  # [d]
    return -0.5 * jnp.sum(rss / obs_noise + n_kept * jnp.log(2 * jnp.pi * obs_noise), axis=-1)


class FusedDenseNonlinearGaussian(DenseNonlinearGaussian):
    """dibs-lib's ``DenseNonlinearGaussian`` with the graph applied to the first layer's weights.

    Θ is dibs-lib's stax pytree: per layer ``(W [d, fan_in, fan_out], b [d, fan_out])`` with the
    node as leading axis, and ``()`` for each activation layer.
    """

    def log_likelihood(self, *, x, theta, g, interv_targets):
        assert x.shape == interv_targets.shape
        return gaussian_log_likelihood(x, self.means(x, theta, g), self.obs_noise, interv_targets)

    def log_prob_parameters(self, *, theta, g):
        return self.log_prob_parameters_batched(theta, g[None])[0]

    def log_prob_parameters_batched(self, theta, gs):
        """[S] dibs-lib's N(0, sig_param) prior of every weight, the first layer's masked by each
        graph of ``gs`` [S, d, d]: the mask weights each input's log-densities summed over the
        hidden units (the same sum as dibs-lib's, as one product for all graphs)."""
        logpdf = lambda leaf: jax_normal.logpdf(x=leaf, loc=0.0, scale=self.sig_param)
        (w1, *rest), *upper = [layer for layer in theta if layer != ()]
        unmasked = sum(jnp.sum(logpdf(leaf)) for leaf in jax.tree_util.tree_leaves((rest, upper)))
        return gs.reshape(gs.shape[0], -1) @ jnp.sum(logpdf(w1), axis=-1).T.reshape(-1) + unmasked

    def interventional_log_joint_probs(self, gs, theta, x, interv_targets, likelihood_scale=None):
        """[S] log p(Θ, D | G_s) for graphs ``gs`` [S, d, d] that share Θ: the DiBS estimators'
        inner loop (the likelihood times ``likelihood_scale`` where given: a minibatch's N / B).
        With one hidden layer (the DiBS paper's model) and biases, the likelihood is
        ``one_hidden_layer_log_likelihoods`` (one product for all S graphs, hand-written reverse
        pass); other networks map ``log_likelihood`` over the graphs."""
        priors = self.log_prob_parameters_batched(theta, gs)
        layers = [layer for layer in theta if layer != ()]
        if len(layers) == 2 and all(len(layer) == 2 for layer in layers):
            (w1, b1), (w2, b2) = layers
            lls = one_hidden_layer_log_likelihoods(
                self._activation(), self.obs_noise, x, interv_targets, gs, w1, b1, w2, b2
            )
        else:
            one = lambda g: self.log_likelihood(x=x, theta=theta, g=g, interv_targets=interv_targets)
            lls = jax.vmap(one)(gs)
        return priors + _scaled(lls, likelihood_scale)

    def means(self, x, theta, g):
        """[N, d] predicted means of every node given its (possibly soft) parents in ``g``."""
        layers = [layer for layer in theta if layer != ()]
        activation = self._activation()
        (w1, *b1) = layers[0]
        # [j, i, h]: node j's first-layer weight from input i, zeroed where i is no parent of j
        h = jnp.einsum("ni,jih->njh", x, w1 * g.T[:, :, None])
        if b1:
            h = h + b1[0]
        for w, *b in layers[1:]:
            h = jnp.einsum("njh,jhk->njk", activation(h), w)
            if b:
                h = h + b[0]
        return h[..., 0]

    def _activation(self):
        return ACTIVATIONS[self.activation]


ACTIVATIONS = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "leakyrelu": jax.nn.leaky_relu}


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def one_hidden_layer_log_likelihoods(activation, obs_noise, x, interv_targets, gs, w1, b1, w2, b2):
    """[S] Gaussian log-likelihoods of the data ``x`` [N, d] under graphs ``gs`` [S, d, d] sharing
    one network with one hidden layer (``w1`` [d, d, H], ``b1`` [d, H], ``w2`` [d, H, 1], ``b2``
    [d, 1], node first), as ``FusedDenseNonlinearGaussian.log_likelihood`` computes them one by one.

    Written for XLA on a CPU, where the automatic reverse pass of the per-graph form spends most of
    its time transposing ``[S, N, d, H]`` tensors: the pre-activations of all graphs are one product
    ``[x, 1] @ [masked W1; b1]`` laid out ``[N, (S, d, H)]``; the output layer is a product with a
    block-diagonal ``[(d, H), d]`` matrix (20 times the arithmetic of a per-node dot, and still
    faster than the transposes a per-node dot needs); the reverse pass is written out so that the
    large tensors are read in that same layout.
    """
    return _one_hidden_layer_forward(activation, obs_noise, x, interv_targets, gs, w1, b1, w2, b2)[0]


def _one_hidden_layer_forward(activation, obs_noise, x, interv_targets, gs, w1, b1, w2, b2):
    n, d = x.shape
    s, hidden = gs.shape[0], w1.shape[-1]
    xa = jnp.concatenate([x, jnp.ones((n, 1), x.dtype)], axis=1)
    masked_w1 = jnp.einsum("jih,sij->isjh", w1, gs)
    wa = jnp.concatenate([masked_w1, jnp.broadcast_to(b1, (1, s, d, hidden))]).reshape(d + 1, s * d * hidden)
    pre = xa @ wa  # [N, (S, d, H)]
    blocks = (w2[..., 0][:, :, None] * jnp.eye(d, dtype=w2.dtype)[:, None, :]).reshape(d * hidden, d)
    means = (activation(pre).reshape(n * s, d * hidden) @ blocks).reshape(n, s, d) + b2[:, 0]
    lls = gaussian_log_likelihood(x[:, None, :], means, obs_noise, interv_targets[:, None, :], axis=(0, 2))
    return lls, (x, interv_targets, gs, w1, w2, xa, wa, pre, means)


def _one_hidden_layer_backward(activation, obs_noise, residuals, cotangent):
    x, interv_targets, gs, w1, w2, xa, wa, pre, means = residuals
    n, d = x.shape
    s, hidden = gs.shape[0], w1.shape[-1]
    # d lls_s / d means, times the cotangent of each graph's log-likelihood
    r = jnp.where(interv_targets[:, None, :], 0.0, (x[:, None, :] - means) / obs_noise) * cotangent[None, :, None]
    a, da = jax.jvp(activation, (pre,), (jnp.ones_like(pre),))
    dw2 = jnp.sum(a.reshape(n, s, d, hidden) * r[..., None], axis=(0, 1))[..., None]
    db2 = jnp.sum(r, axis=(0, 1))[:, None]
    dpre = (da.reshape(n, s, d, hidden) * r[..., None] * w2[..., 0]).reshape(n, s * d * hidden)
    dwa = (xa.T @ dpre).reshape(d + 1, s, d, hidden)
    dw1 = jnp.einsum("isjh,sij->jih", dwa[:d], gs)
    db1 = jnp.sum(dwa[d], axis=0)
    dgs = jnp.einsum("isjh,jih->sij", dwa[:d], w1)
    dx = (dpre @ wa.T)[:, :d] - jnp.sum(r, axis=1)
    return dx, None, dgs, dw1, db1, dw2, db2


one_hidden_layer_log_likelihoods.defvjp(_one_hidden_layer_forward, _one_hidden_layer_backward)


def make_inference_model(model: dict, n_vars: int, impl: str = "fused"):
    """The likelihood the learners (and the likelihood metrics) use for a ``data.model`` section:
    the fused class, or dibs-lib's own with ``impl="dibs"``."""
    from harness.data.synthetic import make_likelihood_model

    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"likelihood_impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "dibs":
        return make_likelihood_model(model, n_vars)
    fused = FusedLinearGaussian if model["type"] == "linear_gaussian" else FusedDenseNonlinearGaussian
    return make_likelihood_model(model, n_vars, cls=fused)
