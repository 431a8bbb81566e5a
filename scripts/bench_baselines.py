"""The paper's baselines at the paper's linear scale, side by side with svgd in one process.

    python scripts/bench_baselines.py [--mc3-steps 1000000] [--svgd-steps 3000] [--resamples 30]

Data: configs/baselines.yaml's setting (d = 20, ER with 2 edges per node, 100 training rows,
linear Gaussian), seed 0. Prints:

- mc3 with 4 chains and 32 kept samples: steps per second per chain, acceptance, effective sample
  sizes and effective samples per second, with ``--mc3-steps`` steps per chain (goal: 10^6 steps
  per chain, 4 chains, in less wall time than 3000 svgd steps with 30 particles);
- svgd with 30 particles for ``--svgd-steps`` steps (the paper's budget), the same way;
- bootstrap GES and PC: seconds per resample and for ``--resamples`` resamples.
Each fit's wall time includes its compilation (a first fit in the process).
"""

from __future__ import annotations

import argparse
import time

import jax

from harness import load_study
from harness.data import make_dataset
from harness.evaluation.metrics import graph_metrics
from harness.execution.jax_setup import configure_jax
from harness.execution.monitor import Monitor
from harness.learners import bootstrap_ges, bootstrap_pc, mc3, svgd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mc3-steps", type=int, default=1_000_000)
    ap.add_argument("--svgd-steps", type=int, default=3000)
    ap.add_argument("--resamples", type=int, default=30)
    args = ap.parse_args()
    configure_jax()
    cases = {c.learner: c for c in load_study("configs/baselines.yaml", {"seeds": [0], "sweep": {}})}
    config = cases["svgd"].config
    dataset = make_dataset(config["data"], 0)
    key = jax.random.PRNGKey(0)
    print(
        f"d = {dataset.n_vars}, {dataset.x.shape[0]} rows, true edges {int(dataset.g.sum())}; "
        f"{jax.devices()[0].device_kind}"
    )

    per_chain = 8
    thin = max(1, args.mc3_steps // 10 // per_chain)
    settings = mc3.Settings(n_particles=32, n_chains=4, burnin=args.mc3_steps - thin * per_chain, thin=thin)
    t = time.perf_counter()
    post = mc3.fit(dataset, cases["mc3"].config, settings, key)
    wall = time.perf_counter() - t
    steps = settings.steps_per_chain
    run_s = wall - post.compile_s
    diag = post.diagnostics
    print(
        f"mc3       4 chains x {steps:,} steps (burn-in {settings.burnin:,}, thin {thin:,}, 32 kept): "
        f"wall {wall:7.1f} s (compile {post.compile_s:.1f} s) -> {steps / run_s:,.0f} steps/s per chain, "
        f"{4 * steps / run_s:,.0f} in all"
    )
    print(
        f"          acceptance {diag['mc3_acceptance']:.4f}, ESS of the log-posterior {diag['mc3_ess']:.1f} "
        f"({diag['mc3_ess'] / wall:.2f}/s), smallest edge ESS {diag['mc3_ess_edges']:.1f} "
        f"({diag['mc3_ess_edges'] / wall:.2f}/s); eshd {graph_metrics(post, dataset.g)['eshd']:.1f}"
    )

    s = svgd.Settings.model_validate({**cases["svgd"].settings, "steps": args.svgd_steps})
    t = time.perf_counter()
    post = svgd.fit(dataset, config, s, key, Monitor())
    svgd_wall = time.perf_counter() - t
    print(
        f"svgd      30 particles x {args.svgd_steps:,} steps: wall {svgd_wall:7.1f} s (compile {post.compile_s:.1f} s) "
        f"-> {(svgd_wall - post.compile_s) / args.svgd_steps * 1000:.1f} ms per step; "
        f"eshd {graph_metrics(post, dataset.g)['eshd']:.1f}"
    )
    print(f"          mc3 wall / svgd wall = {wall / svgd_wall:.2f}  (goal < 1 at 10^6 mc3 steps and 3000 svgd steps)")

    for name, module in (("bootstrap_ges", bootstrap_ges), ("bootstrap_pc", bootstrap_pc)):
        n = 3
        t = time.perf_counter()
        post = module.fit(dataset, cases[name].config, module.Settings(n_particles=n), key)
        per = (time.perf_counter() - t) / n
        print(
            f"{name:13s} {per:6.2f} s per resample -> {per * args.resamples:7.1f} s for {args.resamples} "
            f"(eshd of {n}: {graph_metrics(post, dataset.g)['eshd']:.1f})"
        )


if __name__ == "__main__":
    main()
