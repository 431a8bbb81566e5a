"""Structure MCMC (MC³; Madigan & York 1995, Giudici & Castelo 2003) over DAGs, several chains as one
jitted, vmapped loop.

Target: the marginal posterior p(G | D) ∝ p(G) p(D | G) with the closed-form local score the exact
posterior uses (:func:`harness.models.scores.marginal_score`, the same function, in JAX) and dibs-lib's graph prior as its per-node
table. Moves: add, delete or reverse one edge, proposed uniformly among the moves that keep the
graph acyclic. The neighbourhood of G differs from that of G', so the acceptance probability carries
the Hastings correction |N(G)| / |N(G')| (``hastings=False`` drops it, as the DiBS paper's
``dibs/mcmc/structure.py`` does, larslorch/dibs branch ``full``: it accepts with min(0, Bayes
factor); kept only for the test that shows the difference).

Acyclicity is checked with the reflexive transitive closure R (R[i, j]: a path i ⇝ j, or i = j):
adding i → j is valid iff R[j, i] = 0; reversing i → j is valid iff no other path leads from i to
j, i.e. no child k ≠ j of i with R[k, j]. A step recomputes the closure of the proposed graph
(log2 d boolean matrix products) and the scores of the (at most two) nodes whose parents changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Target:
    """The posterior a chain samples, as hashable settings (a jit static argument)."""

    n_vars: int
    score: object  # harness.models.scores.marginal_score's (a frozen dataclass: hashable)
    prior: tuple  # log prior of one node's parent set by its size (harness.models.graph_priors.log_graph_prior_table)
    hastings: bool = True

    def node_score(self, c, n, j, parents):
        """log p(Pa_j) + log p(x_j | x_Pa) of node ``j`` with parent indicator ``parents`` [d]."""
        local = self.score.local(c, n, j, parents.astype(c.dtype), xp=jnp)
        return local + jnp.asarray(self.prior, c.dtype)[parents.sum()]


def closure(g):
    """Reflexive transitive closure of a boolean adjacency matrix [d, d]."""
    d = g.shape[-1]
    reach = (g | jnp.eye(d, dtype=bool)).astype(jnp.float32)
    for _ in range(max(1, math.ceil(math.log2(d)))):  # paths up to length 2^k >= d
        reach = jnp.minimum(reach @ reach, 1.0)
    return reach > 0


def valid_moves(g, reach):
    """[3, d, d] booleans: adding, deleting, reversing i → j keeps the graph acyclic."""
    gf = g.astype(jnp.float32)
    add = ~g & ~reach.T  # no path j ⇝ i (and i ≠ j: the closure is reflexive)
    other_path = (gf @ reach.astype(jnp.float32)) - gf > 0.5  # a child k ≠ j of i reaches j
    return jnp.stack([add, g, g & ~other_path])


def init_chain(target: Target, c, n, key):
    """A chain at the empty graph: (graph, closure, valid moves, node scores, key, accepted moves)."""
    d = target.n_vars
    g = jnp.zeros((d, d), dtype=bool)
    reach = closure(g)
    scores = jax.vmap(lambda j: target.node_score(c, n, j, g[:, j]))(jnp.arange(d))
    return g, reach, valid_moves(g, reach), scores, key, jnp.zeros((), jnp.int32)


def step(target: Target, c, n, state):
    """One Metropolis-Hastings step of one chain."""
    g, reach, moves, scores, key, accepted = state
    d = target.n_vars
    key, k_move, k_accept = jax.random.split(key, 3)
    flat = moves.reshape(-1)
    m = jax.random.categorical(k_move, jnp.where(flat, 0.0, -jnp.inf))
    kind, i, j = m // (d * d), (m // d) % d, m % d  # kind 0 add, 1 delete, 2 reverse i -> j
    g_new = g.at[i, j].set(kind == 0).at[j, i].set(jnp.where(kind == 2, True, g[j, i]))
    reach_new = closure(g_new)
    moves_new = valid_moves(g_new, reach_new)
    s_i, s_j = target.node_score(c, n, i, g_new[:, i]), target.node_score(c, n, j, g_new[:, j])
    log_ratio = (s_i + s_j) - (scores[i] + scores[j])
    if target.hastings:
        log_ratio += jnp.log(flat.sum()) - jnp.log(moves_new.reshape(-1).sum())
    accept = jnp.log(jax.random.uniform(k_accept)) < log_ratio
    new = (g_new, reach_new, moves_new, scores.at[i].set(s_i).at[j].set(s_j))
    kept = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), new, (g, reach, moves, scores))
    return (*kept, key, accepted + accept)


def init_chains(target: Target, keys, c, n):
    return jax.vmap(init_chain, (None, None, None, 0))(target, c, n, keys)


def advance(target: Target, steps, states, c, n):
    """``steps`` steps of every chain (burn-in; a traced count: one executable serves every length)."""
    one = lambda s: jax.lax.fori_loop(0, steps, lambda _, x: step(target, c, n, x), s)  # noqa: E731
    return jax.vmap(one)(states)


def collect(target: Target, n_keep: int, thin, states, c, n):
    """``n_keep`` samples per chain, one every ``thin`` steps (traced): (states, graphs [chains, n_keep,
    d, d], log-posterior trace [chains, n_keep] up to a constant)."""

    def one(state):
        def keep(s, _):
            s = jax.lax.fori_loop(0, thin, lambda _, x: step(target, c, n, x), s)
            return s, (s[0], s[3].sum())

        return jax.lax.scan(keep, state, None, length=n_keep)

    states, (graphs, trace) = jax.vmap(one)(states)
    return states, graphs, trace


def reset_acceptance(states):
    return (*states[:5], jnp.zeros_like(states[5]))


def chain_sizes(total: int, size: int) -> list[int]:
    """``total`` split into chunks of at most ``size`` (a deadline and progress between chunks)."""
    return [size] * (total // size) + ([total % size] if total % size else [])


def ess(trace: np.ndarray, method: str) -> float:
    """Effective sample size of ``trace`` [chains, draws] (arviz-stats; nan where it is undefined)."""
    from arviz_stats.base import array_stats

    return float(array_stats.ess(np.asarray(trace, dtype=np.float64), method=method))


def diagnostics(graphs: np.ndarray, trace: np.ndarray, accepted: np.ndarray, steps: int) -> dict[str, float]:
    """``mc3_acceptance`` (share of accepted moves after burn-in), ``mc3_ess`` (bulk ESS of the
    log-posterior trace of the kept samples) and ``mc3_ess_edges`` (the smallest ESS of the mean of
    an edge indicator, over the edges whose indicator varies; the number of kept samples when none
    does). A constant trace has no defined ESS: it counts as the number of kept samples."""
    chains, draws = trace.shape
    kept = chains * draws
    edges = graphs.reshape(chains, draws, -1).astype(np.float64)
    varying = [e for e in range(edges.shape[-1]) if np.ptp(edges[..., e]) > 0]
    edge_ess = [ess(edges[..., e], "mean") for e in varying]
    edge_ess = [v for v in edge_ess if np.isfinite(v)]
    trace_ess = ess(trace, "bulk") if np.ptp(trace) > 0 else float(kept)
    return {
        "mc3_acceptance": float(accepted.sum() / (chains * steps)),
        "mc3_ess": trace_ess if np.isfinite(trace_ess) else float(kept),
        "mc3_ess_edges": float(min(edge_ess)) if edge_ess else float(kept),
    }
