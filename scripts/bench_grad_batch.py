"""Seconds per svgd step on a Sachs-shaped problem (d = 11, 7466 training rows, 30 particles, latent
dimension 11, 128 gradient samples: the DiBS paper's sachs-lingauss and sachs-fcgauss commands),
minibatched gradients (``n_grad_batch_size: 100``) against the full batch, side by side in one
process: the two loops alternate call by call so that machine noise hits both alike; each figure is
the median over ``--reps`` calls of ``--steps`` steps after a warm-up call.

    python scripts/bench_grad_batch.py [--models linear nonlinear] [--batch 100] [--steps 5] [--reps 5]

The data are synthetic rows of the same shape (the timing does not depend on their values).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from harness.learners import _dibs
from harness.learners.svgd import Settings

D, ROWS, PARTICLES = 11, 7466, 30
MODELS = {
    "linear": {"type": "linear_gaussian", "obs_noise": 1.0, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5},
    "nonlinear": {"type": "nonlinear_gaussian", "hidden_layers": [5], "obs_noise": 1.0, "sig_param": 1.0},
}


def loop_and_state(model: str, batch: int | None, x, mask):
    data = {"graph": {"type": "er", "n_vars": D, "edges_per_node": 2}, "model": MODELS[model]}
    settings = Settings(n_particles=PARTICLES, n_dim=D, n_grad_batch_size=batch).model_dump()
    problem = _dibs.Problem.build(data, settings, D)
    state = _dibs.svgd_init(problem, PARTICLES, jax.random.PRNGKey(0), x, mask)
    loop = jax.jit(_dibs.svgd_loop, static_argnums=(0, 2))
    return (lambda s: loop(problem, jnp.asarray(10, jnp.int32), STEPS, s, x, mask)), state


def main() -> None:
    global STEPS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["linear", "nonlinear"], choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    STEPS = args.steps
    x = jnp.asarray(np.random.default_rng(0).normal(size=(ROWS, D)), jnp.float32)
    mask = jnp.zeros(x.shape, jnp.int32)
    print(f"device: {jax.devices()[0].device_kind}; d = {D}, {ROWS} rows, {PARTICLES} particles; s per step")
    for model in args.models:
        runs = {name: loop_and_state(model, batch, x, mask) for name, batch in (("full", None), ("batch", args.batch))}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, (run, state) in list(runs.items()):
            try:
                jax.block_until_ready(run(state))  # compile and warm up
            except jax.errors.JaxRuntimeError as exc:  # the full batch may not fit in memory
                print(f"{model:9s}  {name}: {str(exc).splitlines()[0][:120]}")
                del runs[name]
        for _ in range(args.reps):
            for name, (run, state) in runs.items():
                start = time.perf_counter()
                jax.block_until_ready(run(state))
                times[name].append((time.perf_counter() - start) / STEPS)
        shown = {n: statistics.median(t) for n, t in times.items() if t}
        line = "   ".join(
            f"{'full batch' if n == 'full' else f'B = {args.batch}'}: {v:.3f} s" for n, v in shown.items()
        )
        ratio = f"   ratio full / batched {shown['full'] / shown['batch']:.2f}" if len(shown) == 2 else ""
        print(f"{model:9s}  {line}{ratio}")


STEPS = 5

if __name__ == "__main__":
    main()
