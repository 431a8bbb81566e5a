"""dibs-lib's ``JointDiBS`` with its two likelihood-gradient estimators computed in one pass each.

dibs-lib estimates ∇_Z and ∇_Θ of log p(Θ, D | Z) by drawing S graphs per particle (soft
Gumbel-softmax graphs for Z, hard Bernoulli graphs for Θ), differentiating log p(Θ, D | G_s)
separately for every sample, and combining the S gradients with weights softmax(log p_s)::

    ∇ ≈ Σ_s w_s ∇ log p(Θ, D | G_s),   w_s = exp(log p_s) / Σ_s' exp(log p_s')

(``logsumexp(a=log p, b=grads) - logsumexp(log p)``, with signs). The gradient is linear in the
cotangent, so the same sum is *one* reverse pass of the vector (log p_1, ..., log p_S) with
cotangent w: no per-sample gradient (an S-fold copy of Θ, or of the graph chain to Z) is ever
materialised. On a CPU, particles are processed with ``lax.map`` in small batches instead of one
``vmap`` over all of them, which keeps each batch's intermediates (``[S, N, d, hidden]`` for the
nonlinear model) in cache; on an accelerator they stay one batch. Same keys, same samples, same
function: the particles agree with dibs-lib's estimators to float32 rounding
(``tests/test_likelihoods.py``).

Replaced: the reparameterisation (``grad_estimator_z: reparam``) and Θ estimators, and inside the
acyclicity prior's estimator the gradient of h (written out, ``grad_constraint_gumbel``); both
reparameterised estimators build their Gumbel-softmax graphs from the uniform draws behind dibs-lib's
logistic noise (``_soft_graphs``, same draws, same graphs). The score-function estimator, the graph
prior, the kernel and the optimiser are dibs-lib's.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from dibs.inference import JointDiBS
from dibs.utils.func import zero_diagonal
from jax import lax, random, vmap

# On a CPU, particles go through the estimators in batches whose largest intermediate
# ([samples, rows, d, first-layer width] floats) stays under this size: one particle at a time at
# d = 20 with 5 hidden units (measured on 2 cores: 0.51 s per svgd step, 0.63 s with 2 particles per
# batch, 0.79 s with 3 or 5); small problems (the smoke study: all 10 particles) go in one batch. On
# an accelerator, always one batch.
CPU_BATCH_BYTES = 8 * 2**20


@dataclass(frozen=True)
class GradBatches:
    """Minibatched likelihood terms, as the DiBS paper's code uses them (larslorch/dibs, branch
    ``full``, ``dibs/eval/inference.py``, ``log_joint_target``): each call of the likelihood with a
    key uses B rows of the training data drawn without replacement from that key. The paper draws
    them with ``random.choice(key, N, (B,), replace=False)``, a full permutation per draw (2.7 ms
    for N = 7466 on a 2-core CPU: 0.16 s of a Sachs step's 0.19); here they are the B rows with
    the largest of N uniform draws (``lax.top_k``), the same distribution (a uniformly random
    B-subset) in 0.09 ms. dibs-lib
    passes every estimator's likelihood a key of its own, split from the particle's key of the
    step (``JointDiBS.grad_z_likelihood_*``, ``grad_theta_likelihood``: ``subk, subk_ =
    random.split(subk)``), so the rows are fresh per particle, per step and per estimator, and
    shared by the S graph samples of one estimate.

    ``rescale``: the batch log-likelihood times N / B (an unbiased estimate of the full one; the
    estimators' self-normalised weights keep them biased). Off, as in the paper's code, the
    likelihood is tempered by B / N: a different target from the full-data posterior. The
    parameter prior is never scaled."""

    size: int
    n_rows: int
    rescale: bool = False

    @classmethod
    def of(cls, size: int | None, n_rows: int, rescale: bool) -> GradBatches | None:
        """None where every row is used: a batch of all N rows *is* the full data (no permutation,
        so the sums round as the full-batch run's)."""
        return None if size is None or size >= n_rows else cls(size, n_rows, rescale)

    def rows(self, key):
        return lax.top_k(random.uniform(key, (self.n_rows,)), self.size)[1]

    @property
    def scale(self) -> float:
        return self.n_rows / self.size if self.rescale else 1.0

    def log_joint_prob(self, model):
        """dibs-lib's ``log_joint_prob(g, theta, x, interv_targets, rng)`` of ``model`` on the batch."""

        def log_joint_prob(g, theta, x, interv_targets, rng):
            rows = self.rows(rng)
            x, interv_targets = x[rows], interv_targets[rows]
            if not self.rescale:
                return model.interventional_log_joint_prob(g, theta, x, interv_targets, rng)
            log_lik = model.log_likelihood(x=x, theta=theta, g=g, interv_targets=interv_targets)
            return model.log_prob_parameters(theta=theta, g=g) + self.scale * log_lik

        return log_joint_prob


class FusedJointDiBS(JointDiBS):
    particle_batch: int | None = None  # None: by CPU_BATCH_BYTES on a CPU, all particles elsewhere
    grad_batches: GradBatches | None = None  # minibatched likelihood terms (None: every row)

    def _weighted_sum_of_gradients(self, gs, single_theta, wrt: str, rng):
        """(log p(Θ, D | G_s) [S], Σ_s w_s ∇ log p_s) for graphs ``gs`` [S, d, d] sharing Θ (``rng``:
        the likelihood's key, which draws its rows where gradients are minibatched).

        ``wrt="g"``: the per-sample terms w_s ∇_{G_s} log p_s, [S, d, d] (each G_s has its own
        chain back to Z). ``wrt="theta"``: Σ_s w_s ∇_Θ log p_s, a pytree like Θ."""
        if wrt == "g":
            logprobs, pullback = jax.vjp(lambda g: self._log_joint_probs(g, single_theta, rng), gs)
        else:
            logprobs, pullback = jax.vjp(lambda th: self._log_joint_probs(gs, th, rng), single_theta)
        (grad,) = pullback(jax.nn.softmax(logprobs))
        return logprobs, grad

    def _log_joint_probs(self, gs, single_theta, rng):
        """[S] log p(Θ, D | G_s): the model's own batched form where it has one, else dibs-lib's
        per-graph function (which draws its own batch from ``rng``) mapped over the graphs."""
        batched = getattr(self.likelihood_model, "interventional_log_joint_probs", None)
        if batched is None:
            return vmap(self.log_joint_prob, (0, None, None, None, None), 0)(
                gs, single_theta, self.x, self.interv_mask, rng
            )
        if self.grad_batches is None:
            return batched(gs, single_theta, self.x, self.interv_mask)
        rows = self.grad_batches.rows(rng)
        return batched(gs, single_theta, self.x[rows], self.interv_mask[rows], self.grad_batches.scale)

    def grad_z_likelihood_gumbel(self, single_z, single_theta, single_sf_baseline, t, subk):
        subk, subk_ = random.split(subk)  # the same key stream as dibs-lib's estimator
        gs, graphs_pullback = jax.vjp(self._soft_graphs(subk_, self.n_grad_mc_samples, single_z.shape[0], t), single_z)
        subk, subk_ = random.split(subk)
        _, weighted_dg = self._weighted_sum_of_gradients(gs, single_theta, "g", subk_)
        (grad_z,) = graphs_pullback(weighted_dg)
        return grad_z, single_sf_baseline

    def grad_theta_likelihood(self, single_z, single_theta, t, subk):
        p = self.edge_probs(single_z, t)
        g_samples = self.sample_g(p, subk, self.n_grad_mc_samples)
        subk, subk_ = random.split(subk)  # (dibs-lib draws the graphs and splits the same key)
        return self._weighted_sum_of_gradients(g_samples, single_theta, "theta", subk_)[1]

    def eltwise_grad_z_likelihood(self, zs, thetas, baselines, t, subkeys):
        if self.grad_estimator_z != "reparam":
            return super().eltwise_grad_z_likelihood(zs, thetas, baselines, t, subkeys)
        one = lambda a: self.grad_z_likelihood_gumbel(a[0], a[1], a[2], t, a[3])
        return lax.map(one, (zs, thetas, baselines, subkeys), batch_size=self._batch(zs))

    def eltwise_grad_theta_likelihood(self, zs, thetas, t, subkeys):
        one = lambda a: self.grad_theta_likelihood(a[0], a[1], t, a[2])
        return lax.map(one, (zs, thetas, subkeys), batch_size=self._batch(zs))

    def grad_constraint_gumbel(self, single_z, key, t):
        """dibs-lib's reparameterised estimate of ∇_Z E[h(G)], h(G) = tr((I + G/d)^d) − d, from the
        same Gumbel-softmax graphs, with ∇_G h = ((I + G/d)^(d−1))ᵀ written out instead of
        differentiating the matrix power: one power of d − 1 and no reverse pass through it. For
        small d the products are written as broadcast sums, which XLA fuses (a batched dot of
        5 × 5 matrices is a loop of library calls on a CPU)."""
        n_vars = single_z.shape[0]
        gs, graphs_pullback = jax.vjp(self._soft_graphs(key, self.n_acyclicity_mc_samples, n_vars, t), single_z)
        m = jnp.eye(n_vars, dtype=gs.dtype) + gs / n_vars
        grad_h = jnp.swapaxes(matrix_power(m, n_vars - 1), -1, -2)
        (grad_z,) = graphs_pullback(grad_h / self.n_acyclicity_mc_samples)
        return grad_z

    def _soft_graphs(self, key, n_samples: int, n_vars: int, t):
        """z -> [n_samples, d, d] Gumbel-softmax graphs σ(τ(ε + α(t) u·v)), ε ~ Logistic(0, 1) drawn
        from ``key`` as ``random.logistic`` draws it (ε = logit(U), U uniform on [tiny, 1)). With
        τ = 1 (the default) the graphs are computed from U directly, σ(logit(U) + c) =
        U / (U + (1 − U) e^(−c)), which needs no logarithms per sample and one exponential per
        particle entry instead of one per sample; other τ use dibs-lib's ``particle_to_soft_graph``."""
        shape = (n_samples, n_vars, n_vars)
        if self.tau != 1.0:
            eps = random.logistic(key, shape=shape)
            return lambda z: vmap(self.particle_to_soft_graph, (None, 0, None), 0)(z, eps, t)
        dtype = jnp.result_type(float)
        u = random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)

        def soft_graphs(z):
            logits = self.alpha(t) * jnp.einsum("ik,jk->ij", z[..., 0], z[..., 1])
            return zero_diagonal(sigmoid_of_logit_plus(u, logits))

        return soft_graphs

    def _batch(self, zs) -> int:
        n = zs.shape[0]
        batch = self.particle_batch
        if batch is None and jax.default_backend() == "cpu":
            width = (getattr(self.likelihood_model, "hidden_layers", None) or (1,))[0]
            per_particle = self.n_grad_mc_samples * self.x.size * width * self.x.dtype.itemsize
            batch = CPU_BATCH_BYTES // per_particle
        return max(1, min(batch or n, n))


# Up to this size, matrix products are broadcast sums (fused elementwise code); above it, dots.
SMALL_MATRIX = 8


def matrix_power(m, power: int):
    """m^power for a batch of square matrices ``m`` [..., d, d], power ≥ 1, by repeated squaring as
    ``jnp.linalg.matrix_power`` computes it."""
    small = m.shape[-1] <= SMALL_MATRIX
    product = (lambda a, b: jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)) if small else jnp.matmul
    result, square = None, m
    while power:
        if power & 1:
            result = square if result is None else product(result, square)
        power >>= 1
        if power:
            square = product(square, square)
    return result


@jax.custom_jvp
def sigmoid_of_logit_plus(u, c):
    """σ(logit(u) + c) for u in (0, 1), without logarithms: u / (u + (1 − u) e^(−c)) for c ≥ 0 and
    u e^c / (u e^c + 1 − u) otherwise (each exponential ≤ 1, so nothing overflows).

    Its derivative in c is σ(1 − σ), as for dibs-lib's ``sigmoid``, written out: differentiating the
    quotient instead divides by (u + (1 − u) e^(−c))², which underflows to 0 where u is the smallest
    uniform draw (``finfo.tiny``, one draw in 2^23) and c is large, and gives NaN. ``u`` is a random
    draw, a constant of the estimators: it gets no derivative."""
    e = jnp.exp(-jnp.abs(c))
    return jnp.where(c >= 0, u / (u + (1 - u) * e), u * e / (u * e + (1 - u)))


@sigmoid_of_logit_plus.defjvp
def _sigmoid_of_logit_plus_jvp(primals, tangents):
    u, c = primals
    _, dc = tangents
    sigma = sigmoid_of_logit_plus(u, c)
    return sigma, sigma * (1 - sigma) * dc
