"""Inference likelihoods: dibs-lib's functions, computed in a form that uses the hardware well.

The learners differentiate ``interventional_log_joint_prob(g, theta, x, mask)`` with respect to
Θ (for hard graph samples) and to a soft graph G ∈ [0, 1]^{d×d} (the Gumbel-softmax estimator of
∇_Z), vmapped over particles and 128 graph samples each. The classes here compute *exactly* the
same function as dibs-lib's models, so data generation, parameter sampling and priors stay
dibs-lib's (they are subclasses); only ``log_likelihood`` is rewritten:

- ``FusedDenseNonlinearGaussian``: dibs-lib masks the *inputs* per node (``x[None] * g.T[:, :,
  None]``, a ``[d, N, d]`` copy of the data per graph) and runs d small MLPs on them. Masking the
  first layer's *weights* instead (``W1[j, i, :] * g[i, j]``) gives the same pre-activations,
  ``Σ_i x[n, i] g[i, j] W1[j, i, h]``, as one contraction of the data with all nodes' weights at
  once. Under ``vmap`` over graph samples the data are shared, so XLA emits one large matrix
  product instead of d·(samples) tiny ones and no ``[d, N, d]`` copies (forward or backward).
- ``FusedLinearGaussian``: dibs-lib's ``x @ (g * theta)`` is already one matrix product; the class
  is here so that both models go through one switch, and computes the same expression.

Equality with dibs-lib (values, ∇_Θ and ∇_G, with and without interventional masks, several d)
is tested in ``tests/test_likelihoods.py``. ``inference: {likelihood_impl: dibs}`` selects
dibs-lib's own classes (the reference path).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from dibs.models import DenseNonlinearGaussian, LinearGaussian
from jax.scipy.stats import norm as jax_normal

IMPLEMENTATIONS = ("fused", "dibs")


def gaussian_log_likelihood(x, means, obs_noise, interv_targets):
    """Σ over samples and non-intervened nodes of log N(x | means, obs_noise), as dibs-lib sums it."""
    return jnp.sum(jnp.where(interv_targets, 0.0, jax_normal.logpdf(x=x, loc=means, scale=jnp.sqrt(obs_noise))))


class FusedLinearGaussian(LinearGaussian):
    """dibs-lib's ``LinearGaussian`` (same parameters, prior and sampler)."""

    def log_likelihood(self, *, x, theta, g, interv_targets):
        assert x.shape == interv_targets.shape
        return gaussian_log_likelihood(x, x @ (g * theta), self.obs_noise, interv_targets)


class FusedDenseNonlinearGaussian(DenseNonlinearGaussian):
    """dibs-lib's ``DenseNonlinearGaussian`` with the graph applied to the first layer's weights.

    Θ is dibs-lib's stax pytree: per layer ``(W [d, fan_in, fan_out], b [d, fan_out])`` with the
    node as leading axis, and ``()`` for each activation layer.
    """

    def log_likelihood(self, *, x, theta, g, interv_targets):
        assert x.shape == interv_targets.shape
        return gaussian_log_likelihood(x, self.means(x, theta, g), self.obs_noise, interv_targets)

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
        return {
            "relu": jax.nn.relu,
            "sigmoid": jax.nn.sigmoid,
            "tanh": jnp.tanh,
            "leakyrelu": jax.nn.leaky_relu,
        }[self.activation]


def make_inference_model(model: dict, n_vars: int, impl: str = "fused"):
    """The likelihood the learners (and the likelihood metrics) use for a ``data.model`` section:
    the fused class, or dibs-lib's own with ``impl="dibs"``."""
    from harness.data import make_likelihood_model

    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"likelihood_impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "dibs":
        return make_likelihood_model(model, n_vars)
    fused = FusedLinearGaussian if model["type"] == "linear_gaussian" else FusedDenseNonlinearGaussian
    return make_likelihood_model(model, n_vars, cls=fused)
