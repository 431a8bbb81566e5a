"""Measure the baseline gate's rule on the smoke study: false alarms and detected degradations.

    python scripts/gate_trials.py [--seed-sets 0-4,5-9,10-14] [--degrade steps*0.5 ...] [--keep DIR]

(a) No false alarm: for each seed set, the smoke study is run with one process (``-n 0``) and with
two xdist workers (``-n 2``: other thread counts, so other floating-point reduction orders); the
second is gated on the first and must pass.
(b) Detection: for each degradation (``tests/broken/degraded.py``: a setting scaled behind the
study's back, case ids and config hashes unchanged) and seed set, the degraded learners are gated on
that seed set's ``-n 2`` run; the table lists the metrics flagged per learner.

Every session runs as a user runs it (``python -m pytest benchmarks ... --save-baseline FILE``, its
own MLflow store); the verdicts are computed here from those files with ``harness.analysis.baseline``, the
same functions the gate uses, so a changed rule can be re-evaluated without rerunning the learners:
with ``--keep DIR``, sessions whose file exists are not run again. About 3-5 minutes per session on
2 cores. (Thresholds are not part of the verdict here.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.analysis import baseline as bl  # noqa: E402
from harness.tracking.store import sqlite_uri  # noqa: E402

DEFAULT_DEGRADATIONS = ["steps*0.5", "steps*0.25", "n_particles*0.3,n_members*0.3", "h_latent*100"]


def seed_list(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def session(out: Path, seeds: list[int], workers: int, degrade: str = "") -> str:
    """Run the smoke study once (unless ``out`` exists), recording its cases in ``out``."""
    if out.exists():
        return "kept"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLFLOW_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": sqlite_uri(out.parent / "mlflow.db"),
            "HARNESS_JAX_CACHE": str(out.parent / "jax_cache"),
            "PYTHONPATH": str(ROOT),
        }
    )
    if degrade:
        env["HARNESS_DEGRADE"] = degrade
        env["HARNESS_LEARNERS"] = "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-m",
        "smoke",
        "-p",
        "no:cacheprovider",
        "-q",
        "-n",
        str(workers),
        "--override",
        f"seeds={seeds}",
        "--save-baseline",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out.with_suffix(".out").write_text(proc.stdout + proc.stderr)
    if not out.exists():
        raise SystemExit(f"{' '.join(cmd)} recorded nothing:\n{proc.stdout[-3000:]}")
    return f"{time.perf_counter() - start:.0f} s"


def gate(current: Path, base: Path) -> bl.GateResult:
    records = [
        {
            "case_id": c.case_id,
            "learner": c.learner,
            "seed": c.seed,
            "config_hash": c.config_hash,
            "status": "FINISHED",
            "metrics": c.metrics,
        }
        for c in bl.load_file(current).cases.values()
    ]
    return bl.compare_with_baseline(records, bl.load_file(base))


def flagged(result: bl.GateResult) -> str:
    by_learner: dict[str, list[str]] = {}
    for f in result.regressions:
        by_learner.setdefault(f.learner, []).append(
            f"{f.metric} ({f.diff_mean:+.3g}, p={f.p_value:.2g} t / {f.p_signflip:.2g} sign-flip)"
        )
    return "; ".join(f"{l}: {', '.join(ms)}" for l, ms in by_learner.items()) or "nothing flagged"


def margin(result: bl.GateResult) -> str:
    """How close the noise came: the largest mean(worse) / minimum effect, and the smallest p (of
    either test)."""
    ratios = [(f.diff_mean if bl.lower_is_better(f.metric) else -f.diff_mean) / f.min_effect for f in result.findings]
    worst = max(zip(ratios, result.findings), key=lambda rf: rf[0])
    smallest = min(min(f.p_value, f.p_signflip) for f in result.findings)
    return (
        f"largest mean(worse) / min effect {worst[0]:.2f} ({worst[1].learner} {worst[1].metric}, "
        f"p={min(worst[1].p_value, worst[1].p_signflip):.2g}); smallest p {smallest:.2g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-sets", default="0-4,5-9,10-14")
    parser.add_argument("--degrade", nargs="*", default=DEFAULT_DEGRADATIONS)
    parser.add_argument("--degrade-seed-sets", type=int, default=2, help="how many of the seed sets (b) uses")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the sessions' files in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="gate_trials_"))
    sets = args.seed_sets.split(",")
    print("(a) no false alarm: the -n 2 session gated on the -n 0 session of the same seeds")
    for text in sets:
        folder = work / f"seeds{text}"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = session(folder / "n0.yaml", seed_list(text), 0)
        t2 = session(folder / "n2.yaml", seed_list(text), 2)
        for current, base in (("n2", "n0"), ("n0", "n2")):
            result = gate(folder / f"{current}.yaml", folder / f"{base}.yaml")
            verdict = f"FALSE ALARM: {flagged(result)}" if result.failed else "passes"
            print(
                f"  seeds {text}, -{current[0]} {current[1]} gated on -{base[0]} {base[1]}: {verdict} "
                f"({len(result.findings)} comparisons; {margin(result)})",
                flush=True,
            )
        print(f"    sessions: -n 0 {t0}, -n 2 {t2}")
    print("(b) degraded learners gated on the -n 2 session of the same seeds")
    for degrade in args.degrade:
        for text in sets[: args.degrade_seed_sets]:
            folder = work / f"seeds{text}"
            took = session(folder / f"{degrade.replace('*', 'x').replace(',', '+')}.yaml", seed_list(text), 2, degrade)
            result = gate(folder / f"{degrade.replace('*', 'x').replace(',', '+')}.yaml", folder / "n2.yaml")
            print(f"  {degrade:30s} seeds {text}: {flagged(result)} ({took})", flush=True)
    print(f"files in {work}")


if __name__ == "__main__":
    main()
