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

Numerics: each node's scores are divided by its score in the highest-scoring DAG
(:func:`scaled_zeta`), so that DAG weighs 1, no DAG on any subset weighs more, and every term of
the recursion (a sum of DAG weights) stays below the number of DAGs; terms that underflow are
negligible next to R(V) ≥ 1. The signs alternate, but the terms of Robinson's series are of the
order of its sum (the largest about 1.5 times it, without data), so little is cancelled. Where a
node's per-subset optimum lies far above its parents in that DAG, the scaling is capped and the
recursions may fall back to the log domain (``dp_posterior``). The precision is measured in
``tests/test_dynamic.py``: against enumeration at d ≤ 6, against the same recursion in 50-digit
arithmetic at d = 7 and 10, and the scaled path against the log-domain one. The graph prior's
normaliser (for the evidence) is the same recursion on the prior alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.models.graph_priors import log_graph_prior_table
from harness.models.graphs import is_cyclic, parent_masks

# the largest d the harness computes the exact posterior for (scripts/bench_exact.py: about 2 minutes
# and 1 GB at d = 20 on 2 CPU cores; every added variable multiplies the time by about 3.3)
DP_MAX_VARS = 20
CACHE_ENV = "HARNESS_EXACT_CACHE"
log = logging.getLogger(__name__)


@dataclass
class DPPosterior:
    """p(G | D) over every DAG on d nodes: ``edge_marginals`` [d, d] p(i → j | D), ``log_normalizer``
    the evidence log p(D) under the normalised graph prior, and ``score_graphs`` ([M, d] parent
    bitmasks -> [M] Σ_v log q_v(Pa_v)) for the probability of any given graph."""

    edge_marginals: np.ndarray
    log_normalizer: float
    _log_unnormalised_total: float
    score_graphs: Callable[[np.ndarray], np.ndarray]

    @property
    def n_vars(self) -> int:
        return self.edge_marginals.shape[0]

    def log_prob_of(self, g: np.ndarray) -> np.ndarray:
        """[M] exact log p(G | D) of graphs [M, d, d]; −inf for a cyclic graph."""
        score = self.score_graphs(parent_masks(g)) - self._log_unnormalised_total
        return np.where(is_cyclic(g), -np.inf, score)


def table_scorer(local: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda masks: local[np.arange(local.shape[0]), masks].sum(axis=-1)


def data_scorer(x: np.ndarray, model: dict, graph: dict) -> Callable[[np.ndarray], np.ndarray]:
    """Σ_v log q_v(Pa_v) of given parent bitmasks, from the data (no table of every parent set)."""
    from harness.models.scores import marginal_score

    d = np.shape(x)[1]
    score = marginal_score(model, d)
    stat, n = score.statistics(x)
    by_size = log_graph_prior_table(graph, d)

    def scores(masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=np.int64)
        bits = ((masks[..., None] >> np.arange(d)) & 1).astype(np.float64)  # [M, d (node), d (parent)]
        out = np.zeros(masks.shape[0])
        for j in range(d):
            out += (
                score.local(stat, n, j, bits[:, j, :]) + by_size[np.minimum(bits[:, j, :].sum(-1).astype(int), d - 1)]
            )
        return out

    return scores


def dp_posterior_of(x: np.ndarray, model: dict, graph: dict, cache_dir: Path | None = None) -> DPPosterior:
    """The exact posterior of training rows ``x`` under ``model`` and the graph prior ``graph``,
    computed once per (data, model, prior) and kept in ``cache_dir`` (default ``$HARNESS_EXACT_CACHE``,
    else ``.exact_cache`` in the working directory, on the disk a session's workers and Slurm tasks
    share): one process computes under a file lock, the others wait for it and read its result."""
    from harness.exact.local import local_scores

    x = np.asarray(x, dtype=np.float64)
    cache_dir = Path(cache_dir or os.environ.get(CACHE_ENV) or Path.cwd() / ".exact_cache")
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(
        x.tobytes() + json.dumps([x.shape, model, graph], sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    path = cache_dir / f"{key}.npz"
    with _locked(cache_dir / f"{key}.lock"):
        if not path.exists():
            start = time.perf_counter()
            full = dp_posterior(local_scores(x, model, graph), graph)
            log.warning(
                "exact posterior of %d variables computed in %.1f s (%s)", x.shape[1], time.perf_counter() - start, path
            )
            partial = path.with_suffix(".partial.npz")
            np.savez(
                partial,
                edge_marginals=full.edge_marginals,
                log_normalizer=full.log_normalizer,
                total=full._log_unnormalised_total,
            )
            os.replace(partial, path)
    with np.load(path) as saved:
        return DPPosterior(
            edge_marginals=saved["edge_marginals"],
            log_normalizer=float(saved["log_normalizer"]),
            _log_unnormalised_total=float(saved["total"]),
            score_graphs=data_scorer(x, model, graph),
        )


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# R(V) (scaled) is at least 1 unless the shifts were capped (SHIFT_SPAN); below this, capping took
# so much that terms flushed to zero might matter next to it: the log domain recomputes it.
SCALED_FLOOR = 2.0**-300


def dp_posterior(local: np.ndarray, graph: dict) -> DPPosterior:
    """The exact posterior from a table of local scores ``local`` [d, 2^d] (−inf where a node would
    be its own parent) and the graph prior section ``graph`` (its normaliser, for the evidence).

    The recursions run on scaled doubles (:func:`scaled_zeta`); where the scaled evidence still falls
    below :data:`SCALED_FLOOR` or anything overflows (per-node optima hundreds of nats above the
    best DAG's: many rows, strong dependences), they run again in the log domain, each sum
    accumulated as a signed number times e^m with its own m (about 30 times slower)."""
    d = local.shape[0]
    a, shift = scaled_zeta(local)
    r = _forward(a)
    edges = None
    if SCALED_FLOOR <= r[-1] < np.inf:
        total = math.log(r[-1]) + float(shift.sum())
        edges = _edge_sums(a, _backward(a, r)) / r[-1]
    if edges is None or not np.all(np.isfinite(edges)):
        total, edges = _log_domain(local)
    return DPPosterior(
        edge_marginals=edges,
        log_normalizer=total - log_prior_normaliser(graph, d),
        _log_unnormalised_total=total,
        score_graphs=table_scorer(local),
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
    forward, backward, edges = _kernels()[3:6]
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


# no node's shift lies more than this many nats below its largest local score (A_v <= 2^(d-1) e^300)
SHIFT_SPAN = 300.0


def scaled_zeta(local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A [d, 2^d], shift [d]): A_v(U) = Σ_{Pa ⊆ U} exp(local_v(Pa) − shift_v).

    shift_v is node v's local score in the highest-scoring DAG (:func:`map_dag_scores`), so that
    DAG weighs 1 and R(V) ≥ 1; every term of the recursion is a sum of weights of DAGs on a subset
    (with marked sinks), and a DAG on a subset S extends to one on V whose other nodes keep their
    parents in the best DAG (nothing outside S points into S, so no cycle), so no DAG on a subset
    weighs more than the best DAG's 1: the terms stay below the number of DAGs (2^240 at d = 20).
    Where a node's best parent set within some U scores far above its parents in that DAG (the
    per-node optima form cycles), the shift is raised to at most :data:`SHIFT_SPAN` below the node's
    largest score, so that no A_v overflows; R(V) may then fall below 1 (``dp_posterior`` checks)."""
    d = local.shape[0]
    shift = np.maximum(map_dag_scores(local), local.max(axis=1) - SHIFT_SPAN)
    a = np.exp(local - shift[:, None])
    for bit in range(d):  # subset-sum transform, one bit at a time
        step = 1 << bit
        view = a.reshape(d, -1, 2, step)
        view[:, :, 1, :] += view[:, :, 0, :]
    return a, shift


def map_dag_scores(local: np.ndarray) -> np.ndarray:
    """[d] each node's local score in the highest-scoring DAG (Silander & Myllymäki 2006: the best
    parent set within every subset by a max-transform, then the best sink order over subsets)."""
    d = local.shape[0]
    best = local.copy()
    for bit in range(d):  # best_v(U) = max over Pa ⊆ U
        step = 1 << bit
        view = best.reshape(d, -1, 2, step)
        view[:, :, 1, :] = np.maximum(view[:, :, 1, :], view[:, :, 0, :])
    return _kernels()[6](best)


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
        """[d, 2^d] ∂R(V)/∂A_v(U) (reverse mode of ``forward``; zero where v ∈ U). Carried as the
        flow Q(U) = R(U) ∂R(V)/∂R(U) and products R(U) Π A_v(U), which stay in range where R(U)
        alone underflows and ∂R(V)/∂R(U) alone overflows (each is a sum of DAG weights)."""
        d = a.shape[0]
        n = 1 << d
        full = n - 1
        low = low_bits(d)
        flow = np.zeros(n)
        flow[full] = r[full]
        grads = np.zeros((d, n))
        prod = np.empty(n)
        sets = np.empty(n, np.int64)
        sign = np.empty(n)
        bits = np.empty(d, np.int64)
        acc = np.empty(d)
        for u in range(full - 1, -1, -1):
            if r[u] == 0.0:  # skipped by the forward pass too: the gradient of the same computation
                continue
            comp = full ^ u
            k = 0
            for v in range(d):
                if (comp >> v) & 1:
                    bits[k] = v
                    k += 1
            prod[0] = r[u]
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
                    s = u | sets[t]
                    if flow[s] != 0.0:
                        total += sign[t] * (prod[t] / r[s]) * flow[s]
                # T = sets[t] ∪ {v} for each v of the complement outside sets[t]: sign (−1)^|sets[t]|
                base = -sign[t] * prod[t]
                upper = u | sets[t]
                rest = comp ^ sets[t]
                while rest:
                    v = low[rest]
                    s = upper | (1 << v)
                    if flow[s] != 0.0:
                        acc[v] += (base / r[s]) * flow[s]
                    rest &= rest - 1
            flow[u] = total
            for j in range(k):
                v = bits[j]
                grads[v, u] = acc[v]
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

    @njit(cache=True)
    def best_order_scores(best):
        r"""[d] node scores along the best sink order: F(S) = max_{v ∈ S} F(S \ {v}) + best_v(S \ {v})."""
        d = best.shape[0]
        n = 1 << d
        f = np.full(n, -np.inf)
        f[0] = 0.0
        for s in range(1, n):
            for v in range(d):
                if (s >> v) & 1:
                    value = f[s ^ (1 << v)] + best[v, s ^ (1 << v)]
                    if value > f[s]:
                        f[s] = value
        out = np.empty(d)
        s = n - 1
        while s:
            for v in range(d):
                if (s >> v) & 1 and f[s ^ (1 << v)] + best[v, s ^ (1 << v)] == f[s]:
                    out[v] = best[v, s ^ (1 << v)]
                    s ^= 1 << v
                    break
        return out

    return forward, backward, edge_sums, log_forward, log_backward_grads, log_edge_sums, best_order_scores


def _forward(a: np.ndarray) -> np.ndarray:
    return _kernels()[0](np.ascontiguousarray(a))


def _backward(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _kernels()[1](np.ascontiguousarray(a), r)


def _edge_sums(a: np.ndarray, grads: np.ndarray) -> np.ndarray:
    return _kernels()[2](np.ascontiguousarray(a), grads)
