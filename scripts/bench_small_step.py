"""Milliseconds per DiBS step on a small graph, the harness's compiled loops against dibs-lib's own
compiled ``JointDiBS.sample`` loop, side by side in one process.

    python scripts/bench_small_step.py [--d 5] [--particles 10] [--steps 200] [--reps 7] [--json]

The size is the one the small studies (smoke, exact posterior, most tests) run at: d = 5 linear
Gaussian (ER, one edge per node), 10 particles, 128 gradient MC samples, 100 rows. dibs-lib's loop
is built from its own classes (``JointDiBS``, ``LinearGaussian``, ``ErdosReniDAGDistribution``)
with the harness's default settings and compiled with stock JAX settings (before the harness's
``configure_jax``); it is timed on its second ``sample`` call (the first compiles), the
harness's loops on an executable compiled once. Calls are interleaved round-robin
and the median is reported. ``scripts/bench_speed.py --small-step REV`` runs this script in this
checkout and in a worktree of an earlier commit, alternating processes, for today's-vs-then figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp


def problem_and_states(d: int, n_particles: int):
    from harness.data import make_dataset
    from harness.learners import _dibs
    from harness.learners.svgd import Settings

    data = {
        "graph": {"type": "er", "n_vars": d, "edges_per_node": 1},
        "model": {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5},
        "n_observations": 100,
        "n_ho_observations": 100,
        "interventions": {"n_sets": 0},
    }
    settings = Settings(n_particles=n_particles).model_dump()
    dataset = make_dataset(data, seed=0)
    problem = _dibs.Problem.build(data, settings, d)
    x, mask = _dibs._data(dataset)
    key = jax.random.PRNGKey(1)
    states = {
        "svgd": _dibs.svgd_init(problem, n_particles, key, x, mask),
        "ensemble": _dibs.ensemble_init(problem, _dibs.member_keys(key, n_particles), x, mask),
    }
    return problem, settings, states, x, mask


def harness_runner(loop, problem, steps: int, state, x, mask):
    args = (jnp.asarray(0, jnp.int32), jnp.asarray(steps, jnp.int32), state, x, mask)
    exe = jax.jit(loop, static_argnums=0).lower(problem, *args).compile()
    return lambda: jax.block_until_ready(exe(*args))


def dibs_lib_runner(settings: dict, d: int, n_particles: int, steps: int, x, mask):
    from dibs.inference import JointDiBS
    from dibs.models import LinearGaussian
    from dibs.models.graph import ErdosReniDAGDistribution

    keys = (
        "alpha_linear",
        "beta_linear",
        "tau",
        "n_grad_mc_samples",
        "n_acyclicity_mc_samples",
        "grad_estimator_z",
        "score_function_baseline",
    )
    dibs = JointDiBS(
        x=x,
        interv_mask=mask,
        graph_model=ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=1),
        likelihood_model=LinearGaussian(n_vars=d, obs_noise=0.1),
        latent_prior_std=1.0 / d**0.5,
        optimizer_param={"stepsize": settings["stepsize"]},
        **{k: settings[k] for k in keys},
    )
    run = lambda: jax.block_until_ready(dibs.sample(key=jax.random.PRNGKey(1), n_particles=n_particles, steps=steps))
    run()  # compiles the loop of this instance
    return run


def measure(d: int, n_particles: int, steps: int, reps: int) -> dict:
    from harness.execution.jax_setup import configure_jax
    from harness.learners import _dibs

    problem, settings, states, x, mask = problem_and_states(d, n_particles)
    # dibs-lib's loop is compiled before the harness's JAX settings apply: stock JAX, as a user of
    # dibs-lib runs it (the unrolled threefry lowering would speed it up too)
    reference = dibs_lib_runner(settings, d, n_particles, steps, x, mask)
    configure_jax()
    runners = {
        "svgd": harness_runner(_dibs.svgd_loop, problem, steps, states["svgd"], x, mask),
        "ensemble": harness_runner(_dibs.ensemble_loop, problem, steps, states["ensemble"], x, mask),
        "dibs-lib JointDiBS.sample": reference,
    }
    for run in runners.values():
        run()
    times = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=5)
    ap.add_argument("--particles", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print one JSON line (for bench_speed.py)")
    args = ap.parse_args()
    ms = measure(args.d, args.particles, args.steps, args.reps)
    if args.json:
        print("RESULT " + json.dumps(ms))
        return
    ref = ms["dibs-lib JointDiBS.sample"]
    print(
        f"d = {args.d} linear Gaussian, {args.particles} particles, 128 gradient MC samples, 100 rows "
        f"(ms per step, median of {args.reps} x {args.steps} steps)"
    )
    for name, value in ms.items():
        print(f"   {name:28s} {value:8.3f} ms   / dibs-lib {value / ref:6.3f}")


if __name__ == "__main__":
    main()
