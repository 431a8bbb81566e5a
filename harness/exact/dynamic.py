"""The exact posterior over DAGs beyond enumeration, by dynamic programming over node subsets.

Tian & He (2009, "Computing posterior probabilities of structural features in Bayesian networks")
over DAGs (not orders: an order-modular prior would weight each DAG by its number of linear
extensions, a different posterior). With q_v(Pa) = p(Pa) p(x_v | x_Pa) the local scores (the
learners' structure-modular graph prior times the closed-form local marginal likelihood,
:func:`harness.exact.enumeration.local_scores`) and

    A_v(U) = Σ_{Pa ⊆ U} q_v(Pa)                       (a subset-sum, "zeta", transform per node)
    R(∅) = 1,  R(S) = Σ_{∅ ≠ T ⊆ S} (−1)^{|T|+1} R(S \\ T) Π_{v ∈ T} A_v(S \\ T)

(inclusion–exclusion over the sinks T of a DAG on S, Robinson's recursion with weights), R(V) is
the sum over every DAG of Π_v q_v(Pa_v), i.e. the evidence up to the prior's normaliser. R(V) is
linear in each node's A_v (every term holds exactly one factor of it), so the sum over the DAGs in
which i → j is Σ_{U ∌ j} (A_j(U) − A_j(U \\ {i})) ∂R(V)/∂A_j(U): one reverse pass of the recursion
gives every edge's marginal. Cost: d · 2^(d−1) local scores, O(d² 2^d) for the transforms,
O(3^d) forward and O(d 3^d) backward (numba), memory O(d 2^d) (160 MB per table at d = 20).

Numerics: each node's scores are divided by their largest (A_v ≤ 2^(d−1)), so every quantity of
the recursion lies below 2^(d² + 240) < 2^1023 at d ≤ 20 and only terms below 2^−1074 of the largest
(negligible at double precision) underflow to zero. The signs alternate, but the terms of
Robinson's series are of the order of its sum (the largest about 1.5 times it, without data), so
little is cancelled: the precision is measured in ``tests/test_dynamic.py`` (against enumeration at
d ≤ 6 and against the same recursion in 50-digit arithmetic at d ≤ 10) and
``scripts/bench_exact.py``. The graph prior's normaliser (for the evidence) is the same recursion
on the prior alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import is_cyclic, parent_masks


@dataclass
class DPPosterior:
    """p(G | D) over every DAG on d nodes, through its local scores: ``local`` [d, 2^d] (as
    :class:`harness.exact.enumeration.ExactPosterior` holds them), ``edge_marginals`` [d, d]
    p(i → j | D), ``log_normalizer`` the evidence log p(D) under the normalised graph prior."""

    local: np.ndarray
    edge_marginals: np.ndarray
    log_normalizer: float
    _log_unnormalised_total: float

    @property
    def n_vars(self) -> int:
        return self.local.shape[0]

    def log_prob_of(self, g: np.ndarray) -> np.ndarray:
        """[M] exact log p(G | D) of graphs [M, d, d]; −inf for a cyclic graph."""
        masks = parent_masks(g)
        score = self.local[np.arange(self.n_vars), masks].sum(axis=-1) - self._log_unnormalised_total
        return np.where(is_cyclic(g), -np.inf, score)


# Below this R(V) (scaled), terms flushed to zero could matter: every flushed quantity is below
# 2^-1074 and is multiplied by at most 2^(d(d-1)) <= 2^380, so it is under 2^-60 of an R(V) above 2^-634.
SCALED_FLOOR = 2.0**-634


def dp_posterior(local: np.ndarray, graph: dict) -> DPPosterior:
    """The exact posterior from a table of local scores ``local`` [d, 2^d] (−inf where a node would
    be its own parent) and the graph prior section ``graph`` (its normaliser, for the evidence).

    The recursions run on scaled doubles; where the scaled evidence falls below :data:`SCALED_FLOOR`
    (scores thousands of nats apart whose per-node optima form a cycle, so that no DAG reaches them:
    many rows, strong dependences), they run again in the log domain, each sum accumulated as a
    signed number times e^m with its own m (several times slower)."""
    d = local.shape[0]
    a, shift = scaled_zeta(local)
    r = _forward(a)
    if r[-1] >= SCALED_FLOOR:
        total = math.log(r[-1]) + float(shift.sum())
        edges = _edge_sums(a, _backward(a, r)) / r[-1]
    else:
        total, edges = _log_domain(local)
    return DPPosterior(
        local=local,
        edge_marginals=edges,
        log_normalizer=total - log_prior_normaliser(graph, d),
        _log_unnormalised_total=total,
    )


def log_zeta(local: np.ndarray) -> np.ndarray:
    """[d, 2^d] log A_v(U) = log Σ_{Pa ⊆ U} exp(local_v(Pa)), in the log domain."""
    d = local.shape[0]
    la = local.copy()
    for bit in range(d):
        step = 1 << bit
        view = la.reshape(d, -1, 2, step)
        view[:, :, 1, :] = np.logaddexp(view[:, :, 1, :], view[:, :, 0, :])
    return la


def _log_domain(local: np.ndarray) -> tuple[float, np.ndarray]:
    """(log R(V), edge marginals) by the log-domain kernels."""
    la = log_zeta(local)
    forward, backward, edges = _kernels()[3:]
    lr = forward(la)
    lg = backward(la, lr)
    return float(lr[-1]), np.exp(edges(la, lg) - lr[-1])


def log_prior_normaliser(graph: dict, d: int) -> float:
    """log Σ over every DAG of the unnormalised graph prior (the same recursion on the prior alone)."""
    counts = np.array([bin(s).count("1") for s in range(2**d)])
    table = np.tile(log_graph_prior_table(graph, d)[np.minimum(counts, d - 1)], (d, 1))
    table[((np.arange(2**d)[None, :] >> np.arange(d)[:, None]) & 1).astype(bool)] = -np.inf
    a, shift = scaled_zeta(table)
    return math.log(_forward(a)[-1]) + float(shift.sum())


def scaled_zeta(local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A [d, 2^d], shift [d]): A_v(U) = Σ_{Pa ⊆ U} exp(local_v(Pa) − shift_v), shift_v the node's
    largest local score, so that 1 ≤ max A_v ≤ 2^(d−1)."""
    d = local.shape[0]
    shift = local.max(axis=1)
    a = np.exp(local - shift[:, None])
    for bit in range(d):  # subset-sum transform, one bit at a time
        step = 1 << bit
        view = a.reshape(d, -1, 2, step)
        view[:, :, 1, :] += view[:, :, 0, :]
    return a, shift


def _numba():
    import numba

    return numba


@functools.cache
def _kernels():
    """The compiled recursions (numba, cached on disk beside this module after the first compile)."""
    njit = _numba().njit

    @njit(cache=True)
    def low_bits(d):
        """[2^d] index of the lowest set bit of each mask (0 for 0)."""
        out = np.zeros(1 << d, np.int64)
        for t in range(1, 1 << d):
            low = t & -t
            k = 0
            while (low >> k) != 1:
                k += 1
            out[t] = k
        return out

    @njit(cache=True)
    def forward(a):
        d = a.shape[0]
        n = 1 << d
        full = n - 1
        low = low_bits(d)
        r = np.zeros(n)
        r[0] = 1.0
        prod = np.empty(n)
        sets = np.empty(n, np.int64)
        sign = np.empty(n)
        bits = np.empty(d, np.int64)
        for u in range(n):
            ru = r[u]
            if ru == 0.0:
                continue
            comp = full ^ u
            k = 0
            for v in range(d):
                if (comp >> v) & 1:
                    bits[k] = v
                    k += 1
            prod[0] = 1.0
            sets[0] = 0
            sign[0] = -1.0
            for t in range(1, 1 << k):
                prev = t & (t - 1)
                v = bits[low[t]]
                prod[t] = prod[prev] * a[v, u]
                sets[t] = sets[prev] | (1 << v)
                sign[t] = -sign[prev]
                r[u | sets[t]] += sign[t] * ru * prod[t]
        return r

    @njit(cache=True)
    def backward(a, r):
        """[d, 2^d] ∂R(V)/∂A_v(U) (reverse mode of ``forward``; zero where v ∈ U)."""
        d = a.shape[0]
        n = 1 << d
        full = n - 1
        low = low_bits(d)
        rbar = np.zeros(n)
        rbar[full] = 1.0
        grads = np.zeros((d, n))
        prod = np.empty(n)
        sets = np.empty(n, np.int64)
        sign = np.empty(n)
        bits = np.empty(d, np.int64)
        acc = np.empty(d)
        for u in range(full - 1, -1, -1):
            comp = full ^ u
            k = 0
            for v in range(d):
                if (comp >> v) & 1:
                    bits[k] = v
                    k += 1
            prod[0] = 1.0
            sets[0] = 0
            sign[0] = -1.0
            total = 0.0
            for v in range(d):
                acc[v] = 0.0
            for t in range(1 << k):
                if t > 0:
                    prev = t & (t - 1)
                    v = bits[low[t]]
                    prod[t] = prod[prev] * a[v, u]
                    sets[t] = sets[prev] | (1 << v)
                    sign[t] = -sign[prev]
                    total += sign[t] * rbar[u | sets[t]] * prod[t]
                # T = sets[t] ∪ {v} for each v of the complement outside sets[t]: sign (−1)^|sets[t]|
                base = -sign[t] * prod[t]
                upper = u | sets[t]
                rest = comp ^ sets[t]
                while rest:
                    v = low[rest]
                    acc[v] += base * rbar[upper | (1 << v)]
                    rest &= rest - 1
            rbar[u] = total
            for j in range(k):
                v = bits[j]
                grads[v, u] = r[u] * acc[v]
        return grads

    @njit(cache=True)
    def edge_sums(a, grads):
        """[d, d] Σ over DAGs with i → j of Π q: Σ_{U ∋ i, U ∌ j} (A_j(U) − A_j(U \\ {i})) ∂R/∂A_j(U)."""
        d = a.shape[0]
        n = 1 << d
        out = np.zeros((d, d))
        for j in range(d):
            for u in range(n):
                if (u >> j) & 1:
                    continue
                g = grads[j, u]
                if g == 0.0:
                    continue
                for i in range(d):
                    if (u >> i) & 1:
                        out[i, j] += (a[j, u] - a[j, u ^ (1 << i)]) * g
        return out

    @njit(cache=True)
    def signed_add(m, s, i, value_log, sign):
        """Add sign · e^value_log to the number s[i] · e^m[i], keeping |s[i]| <= 1 where it can."""
        if value_log == -np.inf:
            return
        if value_log <= m[i]:
            s[i] += sign * np.exp(value_log - m[i])
        else:
            s[i] = s[i] * np.exp(m[i] - value_log) + sign
            m[i] = value_log

    @njit(cache=True)
    def log_of(m, s, i):
        return m[i] + np.log(s[i]) if s[i] > 0 else -np.inf

    @njit(cache=True)
    def log_forward(la):
        """``forward`` in the log domain: [2^d] log R(S)."""
        d = la.shape[0]
        n = 1 << d
        full = n - 1
        low = low_bits(d)
        m = np.full(n, -np.inf)
        acc = np.zeros(n)
        m[0], acc[0] = 0.0, 1.0
        lr = np.full(n, -np.inf)
        lprod = np.empty(n)
        sets = np.empty(n, np.int64)
        sign = np.empty(n)
        bits = np.empty(d, np.int64)
        for u in range(n):
            lr[u] = log_of(m, acc, u)
            if lr[u] == -np.inf:
                continue
            comp = full ^ u
            k = 0
            for v in range(d):
                if (comp >> v) & 1:
                    bits[k] = v
                    k += 1
            lprod[0], sets[0], sign[0] = 0.0, 0, -1.0
            for t in range(1, 1 << k):
                prev = t & (t - 1)
                v = bits[low[t]]
                lprod[t] = lprod[prev] + la[v, u]
                sets[t] = sets[prev] | (1 << v)
                sign[t] = -sign[prev]
                signed_add(m, acc, u | sets[t], lr[u] + lprod[t], sign[t])
        return lr

    @njit(cache=True)
    def log_backward(la, lr):
        """``backward`` in the log domain: [d, 2^d] log ∂R(V)/∂A_v(U) (−inf where v ∈ U)."""
        d = la.shape[0]
        n = 1 << d
        full = n - 1
        low = low_bits(d)
        lrbar = np.full(n, -np.inf)
        lrbar[full] = 0.0
        lg = np.full((d, n), -np.inf)
        lprod = np.empty(n)
        sets = np.empty(n, np.int64)
        sign = np.empty(n)
        bits = np.empty(d, np.int64)
        one_m, one_s = np.empty(1), np.empty(1)
        vm, vs = np.empty(d), np.empty(d)
        for u in range(full - 1, -1, -1):
            comp = full ^ u
            k = 0
            for v in range(d):
                if (comp >> v) & 1:
                    bits[k] = v
                    k += 1
            lprod[0], sets[0], sign[0] = 0.0, 0, -1.0
            one_m[0], one_s[0] = -np.inf, 0.0
            for v in range(d):
                vm[v], vs[v] = -np.inf, 0.0
            for t in range(1 << k):
                if t > 0:
                    prev = t & (t - 1)
                    v = bits[low[t]]
                    lprod[t] = lprod[prev] + la[v, u]
                    sets[t] = sets[prev] | (1 << v)
                    sign[t] = -sign[prev]
                    signed_add(one_m, one_s, 0, lrbar[u | sets[t]] + lprod[t], sign[t])
                upper = u | sets[t]
                rest = comp ^ sets[t]
                while rest:
                    v = low[rest]
                    signed_add(vm, vs, v, lrbar[upper | (1 << v)] + lprod[t], -sign[t])
                    rest &= rest - 1
            lrbar[u] = log_of(one_m, one_s, 0)
            for j in range(k):
                v = bits[j]
                lg[v, u] = lr[u] + log_of(vm, vs, v)
        return lrbar, lg

    @njit(cache=True)
    def log_edge_sums(la, lg):
        """``edge_sums`` in the log domain: [d, d] log Σ over DAGs with i → j of Π q."""
        d = la.shape[0]
        n = 1 << d
        m = np.full(d * d, -np.inf)
        acc = np.zeros(d * d)
        for j in range(d):
            for u in range(n):
                if (u >> j) & 1 or lg[j, u] == -np.inf:
                    continue
                for i in range(d):
                    if (u >> i) & 1:
                        without = la[j, u ^ (1 << i)]
                        if without == -np.inf:
                            diff = la[j, u]
                        else:
                            diff = la[j, u] + np.log1p(-min(np.exp(without - la[j, u]), 1.0))
                        signed_add(m, acc, i * d + j, diff + lg[j, u], 1.0)
        out = np.full((d, d), -np.inf)
        for i in range(d):
            for j in range(d):
                out[i, j] = log_of(m, acc, i * d + j)
        return out

    def log_backward_grads(la, lr):
        return log_backward(la, lr)[1]

    return forward, backward, edge_sums, log_forward, log_backward_grads, log_edge_sums


def _forward(a: np.ndarray) -> np.ndarray:
    return _kernels()[0](np.ascontiguousarray(a))


def _backward(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _kernels()[1](np.ascontiguousarray(a), r)


def _edge_sums(a: np.ndarray, grads: np.ndarray) -> np.ndarray:
    return _kernels()[2](np.ascontiguousarray(a), grads)
