"""A small study written as a plain dibs-lib user would write it: no harness, no MLflow, no cache.

    python scripts/plain_dibs_study.py [--d 5] [--seeds 4] [--steps 1000] [--particles 10]

For each seed: ground truth and data from dibs-lib's own samplers (an ER graph with one edge per
node, linear Gaussian with dibs-lib's default weights and noise 0.1, 100 training rows, 100
held-out rows, 5 interventional sets of 100 rows with 20 % of the nodes clamped to 0: the smoke
study's data section), then two learners with dibs-lib's default settings, as the harness's svgd and
ensemble run them:

- svgd: one ``JointDiBS`` and ``sample(n_particles=P)``;
- ensemble: P independent particles, ``sample(n_particles=1)`` once per member key on the same
  ``JointDiBS`` (a single particle's SVGD step is its own posterior gradient: no repulsion),

and for each learner the figures the harness records: eshd and AUROC of the empirical and the
mixture distribution (``dibs.metrics``), negative log likelihood of the held-out and of the
interventional rows. It prints the wall time of the whole process at the end, for
``scripts/bench_speed.py --whole-process``, which runs it beside ``pytest benchmarks -n 0`` on the same
cases.
"""

from __future__ import annotations

import argparse
import math
import time

START = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from dibs.graph_utils import graph_to_mat  # noqa: E402
from dibs.inference import JointDiBS  # noqa: E402
from dibs.metrics import expected_shd, neg_ave_log_likelihood, threshold_metrics  # noqa: E402
from dibs.models import LinearGaussian  # noqa: E402
from dibs.models.graph import ErdosReniDAGDistribution  # noqa: E402


def data(seed: int, d: int, n_sets: int = 5):
    key, _ = jax.random.split(jax.random.PRNGKey(seed))
    key, k_graph, k_theta, k_obs, k_ho = jax.random.split(key, 5)
    graph_model = ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=1)
    model = LinearGaussian(n_vars=d, obs_noise=0.1)
    g = graph_model.sample_G(k_graph)
    theta = model.sample_parameters(key=k_theta, n_vars=d)
    x = model.sample_obs(key=k_obs, n_samples=100, g=g, theta=theta)
    x_ho = model.sample_obs(key=k_ho, n_samples=100, g=g, theta=theta)
    sets = []
    for _ in range(n_sets):
        key, k_targets, k_x = jax.random.split(key, 3)
        targets = [int(t) for t in jax.random.choice(k_targets, d, (math.ceil(0.2 * d),), replace=False)]
        x_i = model.sample_obs(key=k_x, n_samples=100, g=g, theta=theta, interv={t: 0.0 for t in targets})
        sets.append((x_i, jnp.zeros_like(x_i).at[:, jnp.array(targets)].set(1)))
    return graph_model, model, graph_to_mat(g), x, x_ho, sets


def evaluate(dibs, model, g_true, x_ho, sets, g, theta) -> dict:
    out = {}
    for name, dist in (("", dibs.get_empirical(g, theta)), ("_mixture", dibs.get_mixture(g, theta))):
        out["eshd" + name] = float(expected_shd(dist=dist, g=g_true))
        out["auroc" + name] = float(threshold_metrics(dist=dist, g=g_true)["roc_auc"])
        out["negll_obs" + name] = float(
            neg_ave_log_likelihood(dist=dist, x=x_ho, eltwise_log_likelihood=dibs.eltwise_log_likelihood_observ)
        )
        out["negll_intrv" + name] = sum(
            float(
                neg_ave_log_likelihood(
                    dist=dist,
                    x=x_i,
                    eltwise_log_likelihood=lambda g_, th, x_: dibs.eltwise_log_likelihood_interv(g_, th, x_, mask),  # noqa: B023 - called at once, within the iteration
                )
            )
            for x_i, mask in sets
        ) / len(sets)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--particles", type=int, default=10)
    args = ap.parse_args()
    for seed in range(args.seeds):
        graph_model, model, g_true, x, x_ho, sets = data(seed, args.d)
        dibs = JointDiBS(x=x, interv_mask=None, graph_model=graph_model, likelihood_model=model)
        _, key = jax.random.split(jax.random.PRNGKey(seed))
        t = time.perf_counter()
        g, theta = dibs.sample(key=key, n_particles=args.particles, steps=args.steps)
        print(
            f"seed {seed} svgd     {time.perf_counter() - t:6.1f} s",
            evaluate(dibs, model, g_true, x_ho, sets, g, theta),
            flush=True,
        )
        t = time.perf_counter()
        members = [dibs.sample(key=k, n_particles=1, steps=args.steps) for k in jax.random.split(key, args.particles)]
        g, theta = (jnp.concatenate(parts) for parts in zip(*members))
        print(
            f"seed {seed} ensemble {time.perf_counter() - t:6.1f} s",
            evaluate(dibs, model, g_true, x_ho, sets, g, theta),
            flush=True,
        )
    print(f"WALL {time.perf_counter() - START:.2f}")


if __name__ == "__main__":
    main()
