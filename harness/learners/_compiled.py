"""Executables compiled once per (function, static settings, argument shapes) in a process, with
the compile time accounted (``Timer``): the learners pass their data as arguments, so every seed
and data set of a shape reuses one executable (and JAX's persistent cache serves later processes)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

_EXECUTABLES: dict = {}


class Timer:
    """Accumulates the seconds spent tracing/lowering and compiling during a fit."""

    def __init__(self):
        self.compile_s = 0.0  # tracing + lowering + XLA compilation (or loading it from the cache)
        self.lower_s = 0.0  # the tracing + lowering part, which no cache can skip


def call_compiled(fn, static: tuple, args: tuple, timer: Timer):
    """Run ``fn(*static, *args)`` from an executable compiled once per (fn, static, shapes)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    signature = (
        fn.__module__,
        fn.__qualname__,
        static,
        treedef,
        tuple((np.shape(a), str(jnp.result_type(a))) for a in leaves),
    )
    exe = _EXECUTABLES.get(signature)
    if exe is None:
        start = time.perf_counter()
        lowered = jax.jit(fn, static_argnums=tuple(range(len(static)))).lower(*static, *args)
        timer.lower_s += time.perf_counter() - start
        exe = lowered.compile()
        timer.compile_s += time.perf_counter() - start
        _EXECUTABLES[signature] = exe
    return exe(*args)


CHUNK = 100


def chunk_lengths(steps: int, every: int | None = None) -> list[int]:
    """Split ``steps`` into loop chunks: ``every`` steps each when convergence curves are on,
    else equal chunks of at most ``CHUNK`` steps (one compiled executable where possible)."""
    if steps <= 0:
        return []
    size = every or next((c for c in range(min(CHUNK, steps), 9, -1) if steps % c == 0), min(CHUNK, steps))
    lengths = [size] * (steps // size)
    if steps % size:
        lengths.append(steps % size)
    return lengths
