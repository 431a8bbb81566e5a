"""Speed figures of the harness, measured side by side in one run (this machine is noisy).

    python scripts/bench_speed.py [--study configs/smoke.yaml] [--seeds 4] [--steps N]

Prints, for a study of `--seeds` seeds x {svgd, ensemble}:

1. later-case / first-case fit time in one process (compile once per shape; goal <= 0.35)
2. ensemble / svgd fit time with M members = M particles, compiled loops (goal <= 1.2)
3. overhead per case: data generation + metrics + MLflow logging and artifacts (goal <= 1 s)
4. compile time in a second session of the same study / the first (persistent cache; goal <= 0.1)
5. wall time of `pytest benchmarks -n 2` against `-n 0` on the same cases (goal: speed-up >= 1.7)
6. cost of convergence curves at inference.eval_every = steps / 20 (svgd and ensemble, compiled loops)
7. the study's case time with the fused likelihoods vs dibs-lib's classes; with --paper-step also
   seconds per step at the paper's scale (d = 20, 30 particles), dibs-lib's
   likelihood classes vs the fused ones (scripts/bench_step.py, which also breaks a step down)
8. collection: `pytest benchmarks --collect-only -q` as a whole process (median of 5; goal <= 2.5 s),
   what it imported (`python -X importtime`: the slowest harness-side imports; JAX, MLflow, scipy.stats
   and pandas must be absent), and loading every study in configs/ alone.
   `--collection` runs only this section (a few seconds).
9. `--small-step [REV]`: milliseconds per step at the small studies' size (d = 5, 10 particles), the
   harness's svgd and ensemble loops against dibs-lib's own compiled `JointDiBS.sample` loop
   (scripts/bench_small_step.py); with REV, also the same figures for the code at commit REV (a
   git worktree), processes alternating, each ratio to dibs-lib taken inside its own process.
   Runs only this section.
10. `--whole-process`: the first data set of a new process (smoke size), the harness's one-program
   path against dibs-lib's samplers op by op, each with an empty and with a warm JAX cache (goal
   <= 3 s and <= 1 s); and an 8-case d = 5 study (seeds 0-3 x svgd, ensemble; 10 particles, 1000
   steps) as a whole process, `pytest benchmarks -n 0` (empty JAX cache, then warm) against the same
   study written as a plain dibs-lib loop (scripts/plain_dibs_study.py), goal <= 0.15. Runs only
   this section (~5 minutes on 2 cores).

Every measurement runs in fresh processes with their own JAX cache and MLflow store in a temp dir.
"""

from __future__ import annotations

import argparse
import json
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

INNER = r"""
import json, os, sys, tempfile, time
if len(sys.argv) > 2:  # run on this many cores only (as a pinned xdist worker would)
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: int(sys.argv[2])])
from pathlib import Path
from harness import load_study, run_case
from harness.tracking.case_runs import RunWriter
from harness.tracking.sessions import open_session
from harness.tracking.store import sqlite_uri

# seed by seed, so that variants of one seed run side by side (this machine is noisy)
cases = sorted(load_study(sys.argv[1]), key=lambda c: (c.seed, c.learner, c.id))
out = []
with tempfile.TemporaryDirectory() as store:
    session = open_session(sqlite_uri(Path(store) / "mlflow.db"), [c.experiment for c in cases], "bench")
    for case in cases:
        result = run_case(case, setup_jax=True)
        t = time.perf_counter()
        run = RunWriter.create(session, case, "bench", "bench")
        run.log_result(case, result, [])
        tracking_s = time.perf_counter() - t
        out.append({"id": case.id, "learner": case.learner, "seed": case.seed, "point": case.sweep_point,
                    **result.timings,
                    "fit_s": result.metrics["fit_s"], "compile_s": result.metrics["compile_s"],
                    "tracking_s": tracking_s})
print("RESULT " + json.dumps(out))
"""


def bench_study(
    path: str, n_seeds: int, steps: int | None, tmp: Path, sweep: dict | None = None, name: str = "bench"
) -> Path:
    study = yaml.safe_load(Path(path).read_text())
    study["name"] = "bench"
    study["seeds"] = list(range(n_seeds))
    study["marks"] = []
    study.pop("thresholds", None)
    study.pop("sweep", None)
    if sweep:
        study["sweep"] = sweep
    study["learners"] = {k: v for k, v in study["learners"].items() if k in ("svgd", "ensemble")}
    if steps:
        study.setdefault("inference", {})["steps"] = steps
    study["name"] = name
    out = tmp / f"{name}.yaml"
    out.write_text(yaml.safe_dump(study))
    return out


def env_with(cache: Path | str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTEST_"))}
    env.update({"HARNESS_JAX_CACHE": str(cache), "PYTHONPATH": str(ROOT), **extra})
    return env


def inner_session(study: Path, cache: Path, cores: int | None = None) -> list[dict]:
    extra = [str(cores)] if cores else []
    proc = subprocess.run(
        [sys.executable, "-c", INNER, str(study), *extra],
        cwd=ROOT,
        env=env_with(cache),
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def pytest_wall(study: Path, n: int, tmp: Path, tag: str, cache_tag: str | None = None) -> float:
    env = env_with(tmp / f"cache_{cache_tag or tag}", MLFLOW_TRACKING_URI=sqlite_uri(tmp / f"{tag}.db"))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--configs", str(study), "-n", str(n), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pytest -n {n} failed:\n{proc.stdout[-3000:]}")
    return wall


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(ROOT / "configs" / "smoke.yaml"))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="override inference.steps")
    ap.add_argument("--paper-step", action="store_true", help="also section 7 (several minutes on a CPU)")
    ap.add_argument("--collection", action="store_true", help="only section 8 (collection)")
    ap.add_argument(
        "--small-step",
        nargs="?",
        const="",
        default=None,
        metavar="REV",
        help="only section 9 (small step), against commit REV if given",
    )
    ap.add_argument("--whole-process", action="store_true", help="only section 10 (first data set, whole study)")
    args = ap.parse_args()
    if args.whole_process:
        print_first_data_set()
        print_whole_process()
        return
    if args.collection:
        print_collection()
        return
    if args.small_step is not None:
        print_small_step(args.small_step or None)
        return

    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        study = bench_study(args.study, args.seeds, args.steps, tmp)
        cfg = yaml.safe_load(study.read_text())
        shown = Path(args.study).resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown  # no machine's path in the output
        print(
            f"study: {shown}, {args.seeds} seeds x {sorted(cfg['learners'])}, "
            f"steps={cfg['inference'].get('steps')}, d={cfg['data']['graph']['n_vars']}, "
            f"cores={len(os.sched_getaffinity(0))}"
        )

        first = inner_session(study, tmp / "cache")
        second = inner_session(study, tmp / "cache")  # same persistent cache: a later session

        print("\n1. compile once per shape (first session, cold cache)")
        for learner in ("svgd", "ensemble"):
            rows = sorted((r for r in first if r["learner"] == learner), key=lambda r: r["seed"])
            later = mean(r["fit_s"] for r in rows[1:])
            print(
                f"   {learner:8s} first case fit {rows[0]['fit_s']:6.2f} s (compile {rows[0]['compile_s']:5.2f} s), "
                f"later cases {later:6.2f} s  -> later/first = {later / rows[0]['fit_s']:.2f}  (goal <= 0.35)"
            )

        print("\n2. ensemble vs svgd, same number of particles, compiled loop (seeds 1..)")
        run_s = {
            l: mean(r["fit_s"] for r in first if r["learner"] == l and r["seed"] > 0) for l in ("svgd", "ensemble")
        }
        comp_s = {
            l: next(r["compile_s"] for r in first if r["learner"] == l and r["seed"] == 0) for l in ("svgd", "ensemble")
        }
        print(
            f"   fit: svgd {run_s['svgd']:.2f} s, ensemble {run_s['ensemble']:.2f} s -> ensemble/svgd = "
            f"{run_s['ensemble'] / run_s['svgd']:.2f}  (goal <= 1.2)"
        )
        print(f"   compile: svgd {comp_s['svgd']:.2f} s, ensemble {comp_s['ensemble']:.2f} s")

        print("\n3. overhead per case (everything but the learner), second session")
        for key in ("data_s", "metrics_s", "tracking_s"):
            print(f"   {key:11s} mean {mean(r[key] for r in second):.3f} s   max {max(r[key] for r in second):.3f} s")
        overhead = [r["data_s"] + r["metrics_s"] + r["tracking_s"] for r in second]
        share = mean(o / (o + r["learner_s"]) for o, r in zip(overhead, second))
        print(
            f"   total      mean {mean(overhead):.3f} s   max {max(overhead):.3f} s  "
            f"({100 * share:.1f}% of a case)  (goal <= 1 s)"
        )
        first_overhead = [r["data_s"] + r["metrics_s"] + r["tracking_s"] for r in first]
        print(f"   (first session, incl. JAX warm-up in its first case: max {max(first_overhead):.3f} s)")

        print("\n4. persistent compilation cache")
        c1, c2 = sum(r["compile_s"] for r in first), sum(r["compile_s"] for r in second)
        l1, l2 = sum(r["lower_s"] for r in first), sum(r["lower_s"] for r in second)
        print(
            f"   compile time incl. tracing/lowering: first session {c1:.2f} s, second session {c2:.2f} s "
            f"-> second/first = {c2 / c1:.3f}  (goal <= 0.1)"
        )
        print(
            f"   XLA compilation alone: first {c1 - l1:.2f} s, second {c2 - l2:.2f} s -> second/first = "
            f"{(c2 - l2) / (c1 - l1):.3f}; tracing/lowering: {l1:.2f} s and {l2:.2f} s (not cacheable)"
        )

        print("\n6. convergence curves at eval_every = steps / 20 (seeds 1.., with and without side by side)")
        steps = cfg["inference"].get("steps", 1000)
        paired = inner_session(
            bench_study(
                args.study, args.seeds, args.steps, tmp, {"inference.eval_every": [None, steps // 20]}, "curves"
            ),
            tmp / "cache",
        )
        for learner in ("svgd", "ensemble"):
            ratios, evals = [], []
            for seed in range(1, args.seeds):
                pair = {
                    r["point"]["inference.eval_every"]: r
                    for r in paired
                    if r["learner"] == learner and r["seed"] == seed
                }
                ratios.append(pair[steps // 20]["learner_s"] / pair[None]["learner_s"])
                evals.append(pair[steps // 20]["curves_s"])
            print(
                f"   {learner:8s} fit with curves / without: median {statistics.median(ratios):.3f} "
                f"(per seed {', '.join(f'{r:.2f}' for r in ratios)}); evaluating the curves: {mean(evals):.3f} s per case"
            )

        print("\n5. xdist, cold cache each")
        w0 = pytest_wall(study, 0, tmp, "n0")
        w2 = pytest_wall(study, 2, tmp, "n2")
        print(f"   pytest -n 0: {w0:.1f} s, -n 2: {w2:.1f} s -> speed-up {w0 / w2:.2f}  (goal >= 1.7)")
        w0 = pytest_wall(study, 0, tmp, "n0")  # the same again: persistent caches now warm
        w2 = pytest_wall(study, 2, tmp, "n2")
        print(f"   warm cache: pytest -n 0: {w0:.1f} s, -n 2: {w2:.1f} s -> speed-up {w0 / w2:.2f}")
        cores = len(os.sched_getaffinity(0))
        if cores > 1:
            one = inner_session(study, tmp / "cache", cores=1)
            for learner in ("svgd", "ensemble"):
                t1 = mean(r["fit_s"] for r in one if r["learner"] == learner and r["seed"] > 0)
                print(
                    f"   why: {learner} fit on 1 core {t1:.2f} s, on {cores} cores {run_s[learner]:.2f} s -> "
                    f"one process already gets {t1 / run_s[learner]:.2f}x from XLA's threads"
                )
        print("\n7. fused likelihoods vs dibs-lib's classes (inference.likelihood_impl), this study's case time")
        impls = inner_session(
            bench_study(
                args.study, args.seeds, args.steps, tmp, {"inference.likelihood_impl": ["fused", "dibs"]}, "impls"
            ),
            tmp / "cache",
        )
        for learner in ("svgd", "ensemble"):
            fit = {
                impl: [
                    r["fit_s"]
                    for r in impls
                    if r["learner"] == learner and r["seed"] > 0 and r["point"]["inference.likelihood_impl"] == impl
                ]
                for impl in ("fused", "dibs")
            }
            print(
                f"   {learner:8s} fit per case (seeds 1.., compiled): fused {mean(fit['fused']):.2f} s, "
                f"dibs {mean(fit['dibs']):.2f} s -> fused/dibs = {mean(fit['fused']) / mean(fit['dibs']):.2f}"
            )
        if args.paper_step:
            print("\n7b. paper-scale step, dibs-lib's likelihood classes vs fused (scripts/bench_step.py)")
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "bench_step.py"), "--no-pieces"],
                cwd=ROOT,
                env=env_with(tmp / "cache"),
                check=True,
            )
        print_collection()


def print_collection() -> None:
    print("\n8. collection")
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        runs.append(time.perf_counter() - t)
    print(
        f"   pytest benchmarks --collect-only -q: median {statistics.median(runs):.2f} s over 5 runs "
        f"(min {min(runs):.2f}, max {max(runs):.2f})  (goal <= 2.5 s)"
    )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "benchmarks", "--collect-only", "-q", "-s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    cumulative = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative[parts[2].strip()] = int(parts[1]) / 1e6
    top = sorted(
        ((s, m) for m, s in cumulative.items() if not m.startswith(("_pytest", "pytest", "encodings"))), reverse=True
    )[:8]
    print("   slowest imports (cumulative, python -X importtime): " + ", ".join(f"{m} {s:.2f} s" for s, m in top))
    heavy = [m for m in ("jax", "mlflow", "scipy.stats", "pandas") if m in cumulative]
    print(f"   imported of jax, mlflow, scipy.stats, pandas: {', '.join(heavy) or 'none'}")
    print("   " + collection_figure())


def print_small_step(rev: str | None, rounds: int = 3) -> None:
    print("\n9. small step: d = 5 linear Gaussian, 10 particles, 128 gradient MC samples, 100 rows (ms per step)")
    script = ROOT / "scripts" / "bench_small_step.py"
    with tempfile.TemporaryDirectory() as tmp_:
        trees = {"this checkout": ROOT}
        if rev:
            tree = Path(tmp_) / "reference"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), rev], cwd=ROOT, check=True)
            trees[f"commit {rev}"] = tree
        try:
            results = {name: [] for name in trees}
            for _ in range(rounds):  # alternate the processes: this machine is noisy
                for name, tree in trees.items():
                    env = env_with(Path(tmp_) / f"cache-{len(results[name])}-{tree.name}", PYTHONPATH=str(tree))
                    out = subprocess.run(
                        [sys.executable, str(script), "--json"],
                        cwd=tree,
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    results[name].append(json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:]))
        finally:
            if rev:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    ref = "dibs-lib JointDiBS.sample"
    for name, runs in results.items():
        for learner in ("svgd", "ensemble"):
            ms = statistics.median(r[learner] for r in runs)
            ratio = statistics.median(r[learner] / r[ref] for r in runs)
            print(
                f"   {name:18s} {learner:8s} {ms:7.3f} ms per step; / dibs-lib's loop in the same process "
                f"{ratio:.3f}  (goal <= 2 ms, <= 0.15)"
            )
        print(f"   {name:18s} dibs-lib {statistics.median(r[ref] for r in runs):7.3f} ms per step")
    if rev:
        for learner in ("svgd", "ensemble"):
            new, old = (statistics.median(r[learner] / r[ref] for r in runs) for runs in results.values())
            print(
                f"   {learner}: this checkout / commit {rev} = {new / old:.3f} (ratios to dibs-lib, each in its process)"
            )


FIRST_DATA_SET = r"""
import sys, time, yaml
from harness.execution.jax_setup import configure_jax
configure_jax()
import jax
jax.numpy.zeros(1).block_until_ready()  # the backend is up: time the data set alone
from harness.data.synthetic import dibs_lib_dataset
from harness.data import make_dataset
from harness.data.spec import DataSpec
data = yaml.safe_load(open("configs/smoke.yaml"))["data"]
make = make_dataset if sys.argv[1] == "harness" else lambda d, s: dibs_lib_dataset(DataSpec.model_validate(d).model_dump(), s)
times = []
for seed in range(3):
    t = time.perf_counter()
    make(data, seed)
    times.append(time.perf_counter() - t)
print("RESULT", *times)
"""


def print_first_data_set(rounds: int = 3) -> None:
    print(
        "\n10a. first data set of a new process: configs/smoke.yaml's data (d = 6, 100 + 100 rows, 5 sets), "
        f"seconds, median of {rounds} processes each"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp_:
        for r in range(rounds):  # alternate: this machine is noisy
            for path in ("harness", "dibs-lib"):
                cache = Path(tmp_) / f"{path}-{r}"
                for state in ("empty cache", "warm cache"):  # the second process finds the first one's programs
                    out = subprocess.run(
                        [sys.executable, "-c", FIRST_DATA_SET, path],
                        cwd=ROOT,
                        env=env_with(cache),
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    times = [float(t) for t in next(l for l in out.splitlines() if l.startswith("RESULT ")).split()[1:]]
                    results.setdefault((path, state), []).append(times)
    for (path, state), runs in results.items():
        first = statistics.median(t[0] for t in runs)
        later = statistics.median(statistics.mean(t[1:]) for t in runs)
        goal = "  (goal <= 3 s)" if state == "empty cache" else "  (goal <= 1 s)"
        print(
            f"   {path:9s} {state:11s}: first {first:5.2f} s, seeds 1-2 {later:5.2f} s each"
            + (goal if path == "harness" else "")
        )
    for state in ("empty cache", "warm cache"):
        ratio = statistics.median(
            h[0] / d[0] for h, d in zip(results[("harness", state)], results[("dibs-lib", state)])
        )
        print(f"   harness / dibs-lib, first data set, {state}: {ratio:.2f}")


def print_whole_process() -> None:
    print("\n10b. an 8-case d = 5 study as a whole process (seeds 0-3 x svgd, ensemble; 10 particles, 1000 steps)")
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        study = yaml.safe_load(bench_study(str(ROOT / "configs" / "smoke.yaml"), 4, 1000, tmp).read_text())
        study["data"]["graph"]["n_vars"] = 5
        path = tmp / "bench.yaml"
        path.write_text(yaml.safe_dump(study))
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "plain_dibs_study.py"), "--d", "5", "--seeds", "4"],
            cwd=ROOT,
            env=env_with("off"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        plain = time.perf_counter() - start
        fits = [l.split()[:5] for l in out.splitlines() if l.startswith("seed ")]
        print(f"   plain dibs-lib loop: {plain:.1f} s (fits: " + ", ".join(f"{f[3]} s" for f in fits[:4]) + ", ...)")
        for label in ("empty JAX cache", "warm JAX cache"):  # a new store each, the second finds the first's cache
            wall = pytest_wall(path, 0, tmp, label.split()[0], cache_tag="whole")
            print(
                f"   harness, pytest benchmarks -n 0, {label}: {wall:.1f} s -> harness / plain = "
                f"{wall / plain:.3f}  (goal <= 0.15)"
            )


def collection_figure() -> str:
    code = (
        "import sys, time; t = time.perf_counter(); from harness import load_cases; "
        "cases = load_cases(['configs/*.yaml']); print(len(cases), time.perf_counter() - t, 'jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    n, seconds, jax_imported = out.stdout.split()
    return f"load_cases(configs/*.yaml) alone: {n} cases in {float(seconds):.2f} s (imports included); JAX imported: {jax_imported}"


if __name__ == "__main__":
    main()
