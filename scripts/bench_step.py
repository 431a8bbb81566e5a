"""Seconds per DiBS step at the paper's scale, dibs-lib's likelihood classes vs the fused ones,
side by side in one process, with a breakdown of where a step spends its time.

    python scripts/bench_step.py [--models nonlinear linear] [--d 20] [--particles 30] [--reps 5]

For each model (the paper's d = 20 nonlinear Gaussian with one hidden layer of 5 units, and the
linear Gaussian) and each implementation, every piece is jitted on its own and timed in steady
state (median of ``--reps`` calls after a warm-up): the full svgd step and ensemble step, and the
pieces of a step: the z-gradient of the likelihood (Gumbel-softmax estimator, 128 soft graphs per
particle), the Θ-gradient (128 hard graphs per particle), the acyclicity prior's gradient, the
SVGD kernel and its update, and the optimiser. The implementations alternate call by call, so that
the noise of this machine hits both alike. The matmul rate of the machine is measured in the same
run, and each step's floating-point work (from XLA's cost analysis) is set against it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from harness.data import make_dataset
from harness.learners import _dibs
from harness.learners._fused_dibs import FusedJointDiBS
from harness.learners.svgd import Settings as SvgdSettings

MODELS = {
    "nonlinear": {"type": "nonlinear_gaussian", "hidden_layers": [5], "obs_noise": 0.1, "sig_param": 1.0},
    "linear": {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5},
}


def paper_problem(model: str, d: int, impl: str, n_particles: int, edges_per_node: int = 2) -> tuple:
    """(problem, svgd state, ensemble state, x, mask) for the paper's d-variable setting."""
    data = {
        "graph": {"type": "er", "n_vars": d, "edges_per_node": edges_per_node},
        "model": dict(MODELS[model]),
        "n_observations": 100,
        "n_ho_observations": 100,
        "interventions": {"n_sets": 0},
    }
    dataset = make_dataset(data, seed=0)
    settings = SvgdSettings(n_particles=n_particles, likelihood_impl=impl).model_dump()
    problem = _dibs.Problem.build(data, settings, d)
    x, mask = _dibs._data(dataset)
    key = jax.random.PRNGKey(1)
    svgd_state = _dibs.svgd_init(problem, n_particles, key, x, mask)
    ens_state = _dibs.ensemble_init(problem, _dibs.member_keys(key, n_particles), x, mask)
    return problem, svgd_state, ens_state, x, mask


def step_pieces(problem, svgd_state, x, mask) -> dict:
    """name -> (function of (x, mask), ) to jit and time; each is one piece of an svgd step."""
    opt_z, opt_theta, key, baselines = svgd_state
    t = jnp.asarray(10, jnp.int32)

    def make(fn):
        def run(x, mask):
            dibs = problem.dibs(x, mask)
            z, theta = dibs.get_params(opt_z), dibs.get_params(opt_theta)
            keys = jax.random.split(key, z.shape[0])
            return fn(dibs, z, theta, keys)

        return run

    def kernel(dibs, z, theta, keys):
        grads = jnp.ones_like(z)
        dtheta = jax.tree_util.tree_map(jnp.ones_like, theta)
        kxx = dibs._f_kernel_mat(z, theta, z, theta)
        return dibs._parallel_update_z(z, theta, kxx, z, theta, grads), dibs._parallel_update_theta(
            z, theta, kxx, z, theta, dtheta
        )

    return {
        "z-gradient (likelihood)": make(lambda dibs, z, th, k: dibs.eltwise_grad_z_likelihood(z, th, baselines, t, k)),
        "Θ-gradient (likelihood)": make(lambda dibs, z, th, k: dibs.eltwise_grad_theta_likelihood(z, th, t, k)),
        "acyclicity prior gradient": make(lambda dibs, z, th, k: dibs.eltwise_grad_latent_prior(z, k, t)),
        "kernel + SVGD update": make(kernel),
        "optimiser update": make(
            lambda dibs, z, th, k: (dibs.opt_update(t, z, opt_z), dibs.opt_update(t, th, opt_theta))
        ),
    }


def full_steps(problem, svgd_state, ens_state) -> dict:
    t = jnp.asarray(10, jnp.int32)
    return {
        "svgd step": lambda x, mask: problem.dibs(x, mask)._svgd_step(t, *svgd_state),
        "ensemble step": lambda x, mask: _dibs.ensemble_step(problem.dibs(x, mask), t, ens_state),
    }


def compiled(fn, x, mask):
    """(executable, floating-point operations of one call). The operations are counted on the
    lowered program with all particles in one batch: a cost analysis counts a loop's body once,
    and the fused estimators loop over particle batches on a CPU."""
    exe = jax.jit(fn).lower(x, mask).compile()
    FusedJointDiBS.particle_batch = 10**9
    try:
        cost = jax.jit(fn).lower(x, mask).cost_analysis()
    finally:
        FusedJointDiBS.particle_batch = None
    cost = cost[0] if isinstance(cost, list) else cost
    return exe, float((cost or {}).get("flops", float("nan")))


def time_side_by_side(exes: dict, args: dict, reps: int) -> dict:
    """Median seconds per call of each executable, calls interleaved round-robin."""
    for name, exe in exes.items():
        jax.block_until_ready(exe(*args[name]))
    times = {name: [] for name in exes}
    for _ in range(reps):
        for name, exe in exes.items():
            start = time.perf_counter()
            jax.block_until_ready(exe(*args[name]))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = min(_timed(f, a) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(f, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(f(*args))
    return time.perf_counter() - start


def bench_model(
    model: str,
    d: int,
    n_particles: int,
    reps: int,
    impls=("dibs", "fused"),
    pieces: bool = True,
    edges_per_node: int = 2,
):
    exes, args, flops = {}, {}, {}
    for impl in impls:
        problem, svgd_state, ens_state, x, mask = paper_problem(model, d, impl, n_particles, edges_per_node)
        parts = full_steps(problem, svgd_state, ens_state) | (
            step_pieces(problem, svgd_state, x, mask) if pieces else {}
        )
        for name, fn in parts.items():
            exes[(impl, name)], flops[(impl, name)] = compiled(fn, x, mask)
            args[(impl, name)] = (x, mask)
    secs = time_side_by_side(exes, args, reps)
    return secs, flops


def report(model: str, d: int, n_particles: int, secs: dict, flops: dict, gflops: float, impls) -> None:
    names = list(dict.fromkeys(name for _, name in secs))
    print(
        f"\n{model} Gaussian, d = {d}, {n_particles} particles, 128 gradient MC samples "
        f"(seconds per call, steady state, median)"
    )
    header = f"   {'':28s}" + "".join(f"{impl:>12s}" for impl in impls)
    if len(impls) == 2:
        header += f"{impls[1] + '/' + impls[0]:>14s}"
    print(header + f"   share of the {impls[-1]} svgd step, GFLOP, % of matmul rate")
    step = secs[(impls[-1], "svgd step")]
    for name in names:
        row = f"   {name:28s}" + "".join(f"{secs[(impl, name)]:12.4f}" for impl in impls)
        if len(impls) == 2:
            row += f"{secs[(impls[1], name)] / secs[(impls[0], name)]:14.3f}"
        s, f = secs[(impls[-1], name)], flops[(impls[-1], name)]
        share = "" if name.endswith("step") else f"{100 * s / step:5.1f}%"
        row += f"   {share:>6s}  {f / 1e9:7.2f}  {100 * f / s / 1e9 / gflops:6.1f}%"
        print(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["nonlinear", "linear"], choices=sorted(MODELS))
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--particles", type=int, default=30)
    ap.add_argument("--edges-per-node", type=int, default=2, help="ER graph density (1 below d = 6)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--impls", nargs="+", default=["dibs", "fused"])
    ap.add_argument("--no-pieces", action="store_true", help="time the full steps only")
    args = ap.parse_args()
    from harness.execution.jax_setup import configure_jax

    configure_jax()
    print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform}), jax {jax.__version__}")
    gflops = matmul_gflops()
    print(f"float32 matmul rate (2048^3, best of 5): {gflops:.0f} GFLOP/s")
    for model in args.models:
        secs, flops = bench_model(
            model, args.d, args.particles, args.reps, tuple(args.impls), not args.no_pieces, args.edges_per_node
        )
        report(model, args.d, args.particles, secs, flops, gflops, tuple(args.impls))


if __name__ == "__main__":
    main()
