"""Measure the baseline gate's rule on the smoke study: false alarms and detected degradations.

    python scripts/gate_trials.py [--seed-sets 0-4,5-9,10-14] [--degrade steps*0.5 steps*0.25 ...]

(a) No false alarm: for each seed set, the smoke study is recorded as a baseline with one process
(``-n 0``) and run again with two xdist workers (``-n 2``: other thread counts, so other
floating-point reduction orders); the second run is gated on the first and must pass.
(b) Detection: for each degradation (``tests/broken/degraded.py``: a setting scaled behind the
study's back, case ids and config hashes unchanged) and seed set, the degraded learners are gated on
that seed set's ``-n 2`` baseline; the table lists the metrics flagged per learner.

Every session runs as a user runs it (``python -m pytest benchmarks``), each with its own MLflow
store in a temp dir. It takes about 3 minutes per session on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"^REGRESSION: (?P<config>\S+) (?P<learner>\S+) (?P<metric>\S+):", re.M)
DEFAULT_DEGRADATIONS = ["steps*0.5", "steps*0.25", "n_particles*0.3,n_members*0.3", "h_latent*100"]


def seed_list(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def session(tmp: Path, seeds: list[int], workers: int, extra: list[str], degrade: str = "") -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLFLOW_"))}
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "HARNESS_JAX_CACHE": str(tmp / "jax_cache"),
                "PYTHONPATH": str(ROOT)})
    if degrade:
        env["HARNESS_DEGRADE"] = degrade
        env["HARNESS_LEARNERS"] = "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-m", "smoke", "-p", "no:cacheprovider", "-q",
           "-n", str(workers), "--override", f"seeds={seeds}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def flagged(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in FLAG.finditer(output):
        out.setdefault(m["learner"], []).append(m["metric"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-sets", default="0-4,5-9,10-14")
    parser.add_argument("--degrade-seed-sets", type=int, default=2, help="how many of the seed sets (b) uses")
    parser.add_argument("--degrade", nargs="*", default=DEFAULT_DEGRADATIONS)
    parser.add_argument("--keep", type=Path, help="keep the baselines and outputs in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="gate_trials_"))
    work.mkdir(parents=True, exist_ok=True)
    print("(a) no false alarm: baseline recorded with -n 0, gated run with -n 2")
    baselines = {}
    for text in args.seed_sets.split(","):
        seeds, tmp = seed_list(text), work / f"seeds{text}"
        tmp.mkdir(exist_ok=True)
        rc0, out0, t0 = session(tmp, seeds, 0, ["--save-baseline", str(tmp / "n0.yaml")])
        rc2, out2, t2 = session(tmp, seeds, 2, ["--baseline", str(tmp / "n0.yaml"), "--save-baseline",
                                                str(tmp / "n2.yaml")])
        (tmp / "n2.out").write_text(out2)
        n = len(re.findall(r"^(ok|REGRESSION): ", out2, re.M))
        verdict = "pass" if rc2 == 0 else f"FAIL (rc {rc2}): {flagged(out2)}"
        print(f"  seeds {text}: {verdict}; {n} comparisons; sessions {t0:.0f} s (-n 0), {t2:.0f} s (-n 2)", flush=True)
        baselines[text] = tmp / "n2.yaml"
    print("(b) degraded learners gated on the -n 2 baseline of the same seeds")
    for degrade in args.degrade:
        for text, base in list(baselines.items())[: args.degrade_seed_sets]:
            rc, out, t = session(work / f"seeds{text}", seed_list(text), 2, ["--baseline", str(base)], degrade)
            (work / f"seeds{text}" / f"{degrade.replace('*', 'x')}.out").write_text(out)
            found = flagged(out)
            shown = "; ".join(f"{l}: {', '.join(ms)}" for l, ms in found.items()) or "nothing flagged"
            print(f"  {degrade:30s} seeds {text}: rc {rc}, {shown} ({t:.0f} s)", flush=True)
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
