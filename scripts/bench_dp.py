"""How long the exact posterior by dynamic programming takes (harness/exact/dynamic.py), per number
of variables, with its peak memory.

    python scripts/bench_dp.py [--vars 12 14 16 18 20] [--model bge|linear_gaussian]

Each d runs in a fresh process on the data of an exact-posterior study (ER with 2 edges per node,
100 rows of linear Gaussian data): first with numba's cache empty (compiling shown apart: a d = 4
problem run first), then the same process on a second data set (warm): the local scores, and the
programme (transforms, recursions, edge sums, the prior's normaliser; on scaled doubles or, where
they would underflow, in the log domain: marked); the process's peak resident memory.
The growth per added variable is the ratio of successive totals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ONE = r"""
import json, resource, sys, time
import numpy as np
d, model_type = int(sys.argv[1]), sys.argv[2]
from harness.data import make_dataset
from harness.exact import dynamic
from harness.exact.enumeration import local_scores
model = {"type": "bge"} if model_type == "bge" else {"type": "linear_gaussian", "obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0}
def data(n_vars, seed):
    spec = {"graph": {"type": "er", "n_vars": n_vars, "edges_per_node": 2 if n_vars > 5 else 1},
            "model": {"type": "linear_gaussian"}, "n_observations": 100, "n_ho_observations": 10,
            "interventions": {"n_sets": 0}}
    return np.asarray(make_dataset(spec, seed).x, np.float64), {"type": "er", "n_vars": n_vars, "edges_per_node": spec["graph"]["edges_per_node"]}
def run(n_vars, seed):
    x, graph = data(n_vars, seed)
    out = {}
    t = time.perf_counter(); local = local_scores(x, model, graph); out["local_s"] = time.perf_counter() - t
    a, shift = dynamic.scaled_zeta(local)
    out["scaled"] = bool(dynamic._forward(a)[-1] >= dynamic.SCALED_FLOOR)
    t = time.perf_counter(); dynamic.dp_posterior(local, graph); out["dp_s"] = time.perf_counter() - t
    out["total_s"] = sum(v for k, v in out.items() if k.endswith("_s"))
    return out
t = time.perf_counter(); run(4, 0); dynamic._log_domain(local_scores(*data(4, 0)[:1], model, data(4, 0)[1])); compile_s = time.perf_counter() - t
first = run(d, 0)
second = run(d, 1)
print(json.dumps({"d": d, "compile_s": compile_s, "first": first, "second": second,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", nargs="+", type=int, default=[12, 14, 16, 18, 20])
    parser.add_argument("--model", default="bge", choices=["bge", "linear_gaussian"])
    args = parser.parse_args()
    print(f"{'d':>3} {'compile':>8} {'local':>7} {'DP':>7} {'total':>8} {'warm':>8} {'growth':>7} {'peak GB':>8}")
    previous = None
    for d in args.vars:
        with tempfile.TemporaryDirectory() as cache:  # numba's cache empty: a cold process
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run(
                [sys.executable, "-c", ONE, str(d), args.model], capture_output=True, text=True, env=env
            )
        if out.returncode:
            print(d, out.stderr[-2000:])
            break
        r = json.loads(out.stdout.strip().splitlines()[-1])
        first, second = r["first"], r["second"]
        growth = f"{second['total_s'] / previous:.1f}x" if previous else ""
        previous = second["total_s"]
        print(
            f"{d:>3} {r['compile_s']:>7.1f}s {first['local_s']:>6.1f}s {first['dp_s']:>6.1f}s "
            f"{first['total_s']:>7.1f}s {second['total_s']:>7.1f}s {growth:>7} "
            f"{r['peak_gb']:>8.2f}" + ("" if first["scaled"] and second["scaled"] else "  (log domain)"),
            flush=True,
        )


if __name__ == "__main__":
    main()
