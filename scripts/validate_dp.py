"""The dynamic programme's edge marginals against long structure-MCMC runs, beyond enumeration.

    python scripts/validate_dp.py [--vars 10 12] [--chains 4] [--per-chain 5000] [--thin 200] [--burnin 50000]

For each d: an exact-posterior study's data (ER with 2 edges per node, 100 rows of linear Gaussian
data, the learners' linear Gaussian with Θ integrated out, the ER prior), the exact edge marginals
p_ij (harness.exact.dynamic), and ``mc3`` (the harness's learner, unchanged) with several chains.
The rule, stated before the run:

- split R-hat (arviz-stats, rank-normalised) below 1.01 on every edge indicator that varies
  (undefined for a constant one);
- each edge's Monte Carlo standard error se_ij = sqrt(p_ij (1 − p_ij) / ESS_ij), ESS_ij the
  effective sample size of the indicator's mean over all chains (p from the programme);
- the largest |p̂_ij − p_ij| / se_ij below the two-sided normal quantile at 0.01 / m (Bonferroni over
  the m = d(d − 1) pairs compared);
- the mean |p̂_ij − p_ij| below the mean of se_ij sqrt(2/π) (the expected |error| of a normal) plus
  three standard deviations of that mean.

Prints each figure and whether the rule holds.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np
from arviz_stats.base import array_stats
from scipy import stats

from harness.data import make_dataset
from harness.exact.dynamic import dp_posterior
from harness.exact.local import local_scores
from harness.learners import mc3

MODEL = {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, "min_edge": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", nargs="+", type=int, default=[10, 12])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--per-chain", type=int, default=5000)
    parser.add_argument("--thin", type=int, default=200)
    parser.add_argument("--burnin", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for d in args.vars:
        graph = {"type": "er", "n_vars": d, "edges_per_node": 2}
        data = {
            "graph": graph,
            "model": MODEL,
            "n_observations": 100,
            "n_ho_observations": 10,
            "interventions": {"n_sets": 0},
        }
        dataset = make_dataset(data, args.seed)
        x = np.asarray(dataset.x, np.float64)
        start = time.perf_counter()
        exact = dp_posterior(local_scores(x, MODEL, graph), graph).edge_marginals
        dp_s = time.perf_counter() - start
        config = {"data": data, "inference": {}}
        settings = mc3.Settings(
            n_particles=args.chains * args.per_chain, n_chains=args.chains, burnin=args.burnin, thin=args.thin
        )
        start = time.perf_counter()
        post = mc3.fit(dataset, config, settings, jax.random.PRNGKey(args.seed + 1))
        mc_s = time.perf_counter() - start
        g = post.g.reshape(args.chains, args.per_chain, d, d).astype(np.float64)
        off = ~np.eye(d, dtype=bool)
        estimate = g.mean(axis=(0, 1))
        rhats, ses = [], []
        for i, j in zip(*np.nonzero(off)):
            trace = g[:, :, i, j]
            varies = np.ptp(trace) > 0
            if varies:
                rhats.append(float(array_stats.rhat(trace, method="rank")))
            ess = float(array_stats.ess(trace, method="mean")) if varies else trace.size
            ses.append(math.sqrt(max(exact[i, j] * (1 - exact[i, j]), 1e-12) / ess))
        ses = np.asarray(ses)
        z = np.abs(estimate - exact)[off] / ses
        m = int(off.sum())
        diff = np.abs(estimate - exact)[off]
        mean_bound = float(
            np.mean(ses) * math.sqrt(2 / math.pi) + 3 * math.sqrt(np.sum(ses**2 * (1 - 2 / math.pi))) / m
        )
        z_bound = float(stats.norm.ppf(1 - 0.01 / (2 * m)))
        ok = (max(rhats or [1.0]) < 1.01) and max(z) < z_bound and diff.mean() < mean_bound
        print(
            f"d = {d}: programme {dp_s:.1f} s, mc3 {mc_s:.0f} s ({args.chains} chains x {args.per_chain} kept, thin "
            f"{args.thin}, burn-in {args.burnin}); max split R-hat {max(rhats or [float('nan')]):.4f} over "
            f"{len(rhats)} varying indicators; mean |diff| {diff.mean():.5f} (bound {mean_bound:.5f}); "
            f"largest |diff| {diff.max():.5f}, largest |diff|/se {max(z):.2f} (bound {z_bound:.2f}): "
            + ("the rule holds" if ok else "THE RULE FAILS"),
            flush=True,
        )


if __name__ == "__main__":
    main()
