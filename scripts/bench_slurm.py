"""The Slurm path's overhead, measured side by side on this machine, and what it means for the paper.

    scripts/local_slurm.sh start && python scripts/bench_slurm.py [--seeds 4] [--steps 200] [--case-minutes 33]

Runs one 8-case study (svgd and ensemble, linear d = 5, ``--seeds`` seeds) twice, as a user runs it:
``pytest benchmarks -n 0`` on a local SQLite store, and ``--executor slurm`` on the one-node Slurm
against an ``mlflow server`` on 127.0.0.1 (the compute nodes' store). Prints both wall times, the
per-case overhead of the Slurm path (the difference over the cases) and its parts as the tasks
recorded them (``time.slurm_wait_s``: submission to the task's Python running; ``time.slurm_startup_s``:
imports, device, store, up to the case's run), then, on paper, the 40-case paper study on K nodes
from a per-case time (``--case-minutes``; default: 3000 steps of the fused d = 20 nonlinear svgd
step measured on this CPU, docs/performance.md, "The paper-scale step").
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.tracking.store import sqlite_uri  # noqa: E402
from tests.services import mlflow_server  # noqa: E402


def study(seeds: int, steps: int) -> dict:
    return {
        "name": "slurmbench",
        "experiment": "bench_slurm",
        "seeds": list(range(seeds)),
        "data": {
            "graph": {"type": "er", "n_vars": 5, "edges_per_node": 1},
            "model": {"type": "linear_gaussian"},
            "n_observations": 100,
            "n_ho_observations": 100,
            "interventions": {"n_sets": 2},
        },
        "inference": {"steps": steps},
        "learners": {"svgd": {"n_particles": 10}, "ensemble": {"n_members": 10}},
    }


def session(args: list[str], env: dict) -> float:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLFLOW_"))}
    full.update(env, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", *args], cwd=ROOT, env=full, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"session failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--case-minutes", type=float, default=33.0)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "study.yaml"
        path.write_text(yaml.safe_dump(study(a.seeds, a.steps)))
        n_cases = 2 * a.seeds
        cache = {"HARNESS_JAX_CACHE": str(tmp / "jax_cache")}
        # warm the compile cache once, so that neither side pays the first compile
        session(["--configs", str(path), "-k", "s0"], {"MLFLOW_TRACKING_URI": sqlite_uri(tmp / "warm.db"), **cache})
        local = session(["--configs", str(path)], {"MLFLOW_TRACKING_URI": sqlite_uri(tmp / "local.db"), **cache})
        with mlflow_server(sqlite_uri(tmp / "server.db"), tmp) as url:
            remote = session(["--configs", str(path)], {"MLFLOW_TRACKING_URI": url, **cache})
            on_slurm = session(
                [
                    "--configs",
                    str(path),
                    "--executor",
                    "slurm",
                    "--slurm-folder",
                    str(tmp / "jobs"),
                    "--slurm",
                    "cpus_per_task=1",
                ],
                {"MLFLOW_TRACKING_URI": url, **cache},
            )
            from mlflow.tracking import MlflowClient

            client = MlflowClient(url)
            exp = client.get_experiment_by_name("bench_slurm")
            tasks = [r for r in client.search_runs([exp.experiment_id]) if "slurm_task" in r.data.tags]
        waits = [r.data.metrics["time.slurm_wait_s"] for r in tasks]
        startups = [r.data.metrics["time.slurm_startup_s"] for r in tasks]
        learner = statistics.median(r.data.metrics["time.learner_s"] for r in tasks)
    cores = len(os.sched_getaffinity(0))
    print(f"{n_cases} cases (svgd and ensemble, linear d = 5, {a.steps} steps), {cores} cores, warm compile cache")
    print(f"  pytest -n 0, local SQLite store:            {local:6.1f} s wall")
    print(f"  pytest -n 0, mlflow server on 127.0.0.1:    {remote:6.1f} s wall (tracking round trips)")
    print(
        f"  --executor slurm (one node), same server:   {on_slurm:6.1f} s wall "
        f"({on_slurm / local:.2f}x -n 0; up to {cores} tasks at once)"
    )
    print(
        f"  per task: submission to Python running {min(waits):.1f} s for the first tasks (median {statistics.median(waits):.1f} s, "
        f"max {max(waits):.1f} s: the rest queue for a free core), imports/device/store "
        f"{statistics.median(startups):.1f} s, learner {learner:.1f} s (median)"
    )
    overhead = min(waits) + statistics.median(startups)
    print(f"\nOn paper: the 40-case paper study at {a.case_minutes:g} min per case plus ~{overhead:.0f} s per task:")
    for k in (1, 2, 4, 8, 10, 20, 40):
        waves = math.ceil(40 / k)
        print(
            f"  {k:3d} nodes (1 case each at a time): {waves:2d} wave(s), ~{waves * (a.case_minutes + overhead / 60) / 60:.1f} h"
        )


if __name__ == "__main__":
    main()
