"""How long the exact posterior takes (harness/exact/enumeration.py), per number of variables.

    python scripts/bench_exact.py [--max-vars 6] [--seeds 3]

Each d runs in a fresh process (so the enumeration of the DAGs is cold, as in a new worker), on an
exact-posterior study's data (ER, one edge per node, 100 rows): the enumeration, the posterior of
the first data set (local scores, every DAG's score, normalisation), a later data set of the same d
(the enumeration is cached per process), the exact reference metrics, and the process's peak memory.
Goal (issue 24): d = 5 in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ONE = r"""
import json, resource, sys, time
d, seeds = int(sys.argv[1]), int(sys.argv[2])
t0 = time.perf_counter()
import numpy as np
from harness.data.spec import DataSpec
from harness.data import make_dataset
from harness.exact.enumeration import all_dags, exact_posterior
from harness.evaluation.metrics import exact_reference_metrics
t_import = time.perf_counter() - t0
data = DataSpec.model_validate({"graph": {"type": "er", "n_vars": d, "edges_per_node": 1},
                                "model": {"type": "linear_gaussian"}, "n_observations": 100,
                                "interventions": {"n_sets": 0}, "exact_posterior": True}).model_dump()
sets = [make_dataset(data, s) for s in range(seeds)]
t = time.perf_counter(); n = len(all_dags(d)); t_enum = time.perf_counter() - t
times, ref = [], []
for ds in sets:
    t = time.perf_counter(); ex = exact_posterior(ds.x, data["model"], data["graph"]); ex.edge_marginals
    times.append(time.perf_counter() - t)
    t = time.perf_counter(); exact_reference_metrics(ex, ds.g); ref.append(time.perf_counter() - t)
print(json.dumps({"d": d, "dags": n, "enumerate_s": t_enum, "first_s": times[0], "later_s": min(times[1:] or times),
                  "reference_s": max(ref), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-vars", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(
        f"{'d':>2} {'DAGs':>9} {'enumerate':>10} {'posterior':>10} {'later data':>11} {'reference':>10} "
        f"{'cold total':>11} {'peak memory':>12}"
    )
    for d in range(4, args.max_vars + 1):
        out = subprocess.run(
            [sys.executable, "-c", ONE, str(d), str(args.seeds)], capture_output=True, text=True, check=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        cold = r["enumerate_s"] + r["first_s"] + r["reference_s"]
        print(
            f"{r['d']:>2} {r['dags']:>9,} {r['enumerate_s']:>9.3f}s {r['first_s']:>9.3f}s {r['later_s']:>10.3f}s "
            f"{r['reference_s']:>9.3f}s {cold:>10.3f}s {r['peak_gb']:>10.2f} GB"
        )
    print(
        "(posterior: local scores + every DAG's score + edge marginals; reference: exact_eshd and exact_auroc;"
        " cold total: what the first case of a new process pays)"
    )


if __name__ == "__main__":
    main()
