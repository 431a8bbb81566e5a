"""The pytest plugin as a user runs it: real pytest processes, real MLflow stores, xdist workers."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness import load_study, run_case
from harness.evaluation.metrics import graph_metrics
from harness.execution.devices import cpu_share, worker_index
from harness.models.posterior import Posterior
from harness.tracking.case_runs import ARTIFACTS
from harness.tracking.store import sqlite_uri
from harness.tracking.tags import PARENT_TAG
from tests.conftest import outcome, run_pytest, tiny_study

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


def study(**changes):
    return tiny_study(**changes)


def runs_of(tmp_path, experiment="dibs_vs_ensembles"):
    client = MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("harness.role") == "session"]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    return client, parents, children


def test_new_study_with_two_workers_leaves_complete_recomputable_runs(write_study, tmp_path):
    s = study(
        name="fresh",
        experiment="fresh_exp",
        learners={"random": {"n_particles": 6}, "svgd": {"n_particles": 3, "steps": 30}},
    )
    path = write_study(s)
    csv_path = tmp_path / "results.csv"
    proc = run_pytest(["--configs", str(path), "-n", "2", "--results-csv", str(csv_path), "-s"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # -s: each svgd case printed its progress from its worker
    for seed in (0, 1):
        assert re.search(rf"fresh-s{seed}-svgd: step 30/30 \(\d+ steps/s\)", proc.stderr), proc.stderr[-2000:]
    client, parents, children = runs_of(tmp_path, "fresh_exp")
    assert len(parents) == 1
    cases = {c.id: c for c in load_study(path)}
    assert sorted(r.info.run_name for r in children) == sorted(cases)
    for run in children:
        case = cases[run.info.run_name]
        assert run.info.status == "FINISHED"
        assert run.data.tags[PARENT_TAG] == parents[0].info.run_id
        tags = run.data.tags
        assert tags["learner"] == case.learner and tags["seed"] == str(case.seed) and tags["config_name"] == "fresh"
        assert tags["case_id"] == case.id and tags["config_hash"] == case.config_hash
        # each of the 2 workers was pinned to its share of the cores before JAX started
        share = max(1, len(os.sched_getaffinity(0)) // 2)
        assert tags["device"] == f"cpu ({share} core{'s' if share > 1 else ''})"
        assert tags["worker"] in ("gw0", "gw1")
        for key in ("harness_version", "dibs_version", "jax_version", "mlflow_version", "git_commit"):
            assert tags.get(key), key
        assert tags["thresholds"] == "passed"
        params = run.data.params
        assert params["data.graph.n_vars"] == "4" and params["seeds"] == str(case.seed)
        assert f"learners.{case.learner}.n_particles" in params
        assert not any(k.startswith("learners.") and not k.startswith(f"learners.{case.learner}.") for k in params)
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == sorted(ARTIFACTS)

        # logged eshd/auroc equal a recomputation from the run's own artifacts (safe formats only)
        local = client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id))
        with np.load(f"{local}/particles.npz", allow_pickle=False) as npz:
            post = Posterior(g=npz["g"], theta=None, log_weights=npz["log_weights"], z=npz["z"] if "z" in npz else None)
            mixture = Posterior(g=npz["g"], theta=None, log_weights=npz["log_weights_mixture"])
        truth = np.array(yaml.safe_load(open(f"{local}/ground_truth.yaml"))["g"])
        for weights, suffix in ((post, ""), (mixture, "_mixture")):
            again = graph_metrics(weights, truth)
            for metric in ("eshd", "auroc", "auprc"):
                assert run.data.metrics[metric + suffix] == pytest.approx(again[metric], rel=1e-9), metric + suffix
        assert yaml.safe_load(open(f"{local}/metrics.yaml")) == pytest.approx(
            {k: v for k, v in run.data.metrics.items() if not k.startswith("time.")}
        )
        assert yaml.safe_load(open(f"{local}/config.yaml")) == case.config
        iv = yaml.safe_load(open(f"{local}/intervention_details.yaml"))["interventions"]
        assert len(iv) == 2 and all(s["n_samples"] == 30 and s["values"] == [0.0] for s in iv)
        assert npz_shapes_ok(post, case)

    # the same case run without pytest gives the same numbers
    svgd_case = cases["fresh-s1-svgd"]
    logged = next(r for r in children if r.info.run_name == svgd_case.id).data.metrics
    direct = run_case(svgd_case).metrics
    for metric in (
        "eshd",
        "auroc",
        "auprc",
        "negll_obs",
        "negll_intrv",
        "n_cyclic",
        "eshd_mixture",
        "negll_obs_mixture",
        "negll_intrv_mixture",
    ):
        assert logged[metric] == pytest.approx(direct[metric], rel=1e-6), metric

    # the parent holds per-learner aggregates; the CSV one row per case
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"
    assert "svgd.eshd_mean" in parent.data.metrics and "random.auroc_std" in parent.data.metrics
    rows = list(csv.DictReader(open(csv_path)))
    assert sorted(r["case_id"] for r in rows) == sorted(cases)
    assert all(r["status"] == "FINISHED" and r["run_id"] and r["metrics.eshd"] for r in rows)
    assert "params.data.graph.n_vars" in rows[0]
    # the terminal summary names every case with its run id, then how to open the results
    for run in children:
        assert run.info.run_id in proc.stdout
    assert "mlflow ui --backend-store-uri" in proc.stdout and "mean ± sd" in proc.stdout


def npz_shapes_ok(post, case) -> bool:
    """Latent particles for a DiBS learner only (the others produce graphs)."""
    m = case.settings["n_particles"]
    latents_ok = post.z.shape == (m, 4, 4, 2) if case.learner in ("svgd", "ensemble") else post.z is None
    return latents_ok and post.g.shape == (m, 4, 4) and post.log_weights.shape == (m,)


def test_k_and_m_select_cases(write_study, tmp_path):
    path = write_study(study(marks=["smoke"], learners={"random": {}, "svgd": {}, "ensemble": {}}))
    ids = lambda args: sorted(  # noqa: E731
        line.split("[")[1].rstrip("]")
        for line in run_pytest(["--configs", str(path), "--collect-only", "-q", *args], tmp_path).stdout.splitlines()
        if "[" in line
    )
    assert ids(["-k", "svgd"]) == ["tiny-s0-svgd", "tiny-s1-svgd"]
    assert ids(["-k", "tiny and ensemble and s1"]) == ["tiny-s1-ensemble"]
    assert len(ids(["-m", "smoke"])) == 6 and ids(["-m", "not smoke"]) == []


EMPTY_TRUTH_SEED = 19  # TINY's 4-node ER graph model draws a graph without edges at this seed


def test_threshold_miss_fails_the_test_but_the_run_is_finished(write_study, tmp_path):
    s = study(seeds=[0, EMPTY_TRUTH_SEED], thresholds={"random": {"auroc": {"min": 0.99}, "eshd": {"max": 99}}})
    proc = run_pytest(["--configs", str(write_study(s))], tmp_path)
    assert proc.returncode == 1
    assert "tiny-s0-random: auroc = " in proc.stdout and "is below its min 0.99" in proc.stdout
    # auroc is undefined against an empty truth: a threshold naming it fails the case
    assert f"tiny-s{EMPTY_TRUTH_SEED}-random: auroc was not computed" in proc.stdout
    _, _, children = runs_of(tmp_path)
    assert [r.info.status for r in children] == ["FINISHED", "FINISHED"]
    for run in children:
        assert run.data.tags["thresholds"] == "failed"
        assert "auroc" in run.data.tags["threshold_misses"]


def test_a_crashing_case_is_failed_with_its_traceback_and_others_complete(write_study, tmp_path):
    path = write_study(study(learners={"crash": {}, "nan_theta": {}, "random": {}}))
    proc = run_pytest(["--configs", str(path), "-n", "2"], tmp_path)
    assert proc.returncode == 1
    client, parents, children = runs_of(tmp_path)
    by_learner = {}
    for r in children:
        by_learner.setdefault(r.data.tags["learner"], []).append(r)
    assert [r.info.status for r in by_learner["random"]] == ["FINISHED", "FINISHED"]
    for r in by_learner["crash"] + by_learner["nan_theta"]:
        assert r.info.status == "FAILED"
        assert [a.path for a in client.list_artifacts(r.info.run_id)] == ["traceback.txt"]
    tb = client.download_artifacts(by_learner["crash"][0].info.run_id, "traceback.txt", str(tmp_path))
    assert "deliberate failure inside the learner" in open(tb).read()
    assert "particles [1]" in by_learner["nan_theta"][0].data.tags["failure_reason"]
    assert (outcome(proc.stdout)["failed"], outcome(proc.stdout)["passed"]) == (4, 2)
    assert parents[0].info.status == "FINISHED"


def test_bad_study_is_rejected_before_anything_runs(write_study, tmp_path):
    s = study()
    s["data"]["graph"]["n_vars"] = "five"
    path = write_study(s)
    for args in ([], ["-n", "2"]):
        proc = run_pytest(["--configs", str(path), *args], tmp_path)
        assert proc.returncode != 0
        assert f"{path}: key 'data.graph.n_vars'" in proc.stdout + proc.stderr
    assert not (tmp_path / "mlflow.db").exists() or not runs_of_any(tmp_path)


def runs_of_any(tmp_path):
    client = MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def test_sixteen_cases_on_four_workers_into_one_sqlite_store(write_study, tmp_path):
    s = study(name="many", seeds={"start": 0, "stop": 16}, learners={"random": {"n_particles": 4}})
    path = write_study(s)
    # a cache of its own: random DAGs compile only the data draws, so starting empty costs little
    cache = tmp_path / "cache_from_option"
    proc = run_pytest(
        ["--configs", str(path), "-n", "4", "--jax-cache", str(cache)],
        tmp_path,
        env={"HARNESS_JAX_CACHE": str(tmp_path / "jax_cache")},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # --jax-cache DIR: the workers compiled into DIR, not into the environment's HARNESS_JAX_CACHE
    assert any(cache.iterdir()) and not (tmp_path / "jax_cache").exists()
    client, parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and len(children) == 16
    assert len({r.info.run_name for r in children}) == 16
    workers = set()
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"eshd", "auroc", "negll_obs"} <= set(run.data.metrics)
        assert len(run.data.params) > 20
        assert len(client.list_artifacts(run.info.run_id)) == len(ARTIFACTS)
        workers.add(run.data.tags["worker"])
    assert len(workers) == 4
    assert "database is locked" not in proc.stdout + proc.stderr


def test_a_dead_worker_fails_its_case_and_the_session_goes_on(write_study, tmp_path):
    path = write_study(study(learners={"die": {}, "random": {}}))
    proc = run_pytest(["--configs", str(path), "-n", "2", "--results-csv", str(tmp_path / "r.csv")], tmp_path)
    assert proc.returncode == 1
    assert (outcome(proc.stdout)["failed"], outcome(proc.stdout)["passed"]) == (2, 2), proc.stdout[-3000:]
    client, parents, children = runs_of(tmp_path)
    status = {r.info.run_name: r.info.status for r in children}
    assert status == {
        "tiny-s0-die": "FAILED",
        "tiny-s1-die": "FAILED",
        "tiny-s0-random": "FINISHED",
        "tiny-s1-random": "FINISHED",
    }
    dead = next(r for r in children if r.info.run_name == "tiny-s0-die")
    assert "ended before the case did" in dead.data.tags["failure_reason"]
    assert parents[0].info.status == "FINISHED"
    rows = {r["case_id"]: r["status"] for r in csv.DictReader(open(tmp_path / "r.csv"))}
    assert rows["tiny-s0-die"] == "FAILED" and rows["tiny-s1-random"] == "FINISHED"
    # every worker, the replacements of the dead ones (gw2, gw3, ...) included, got a core share
    share = len(cpu_share(0, 2, sorted(os.sched_getaffinity(0))))
    expected = f"cpu ({share} core{'s' if share != 1 else ''})"
    devices = {r.data.tags["worker"]: r.data.tags["device"] for r in children}
    assert any(worker_index(w) >= 2 for w in devices), devices  # a replacement ran a case
    assert set(devices.values()) == {expected}, devices


def status_read_only(db, run_name):
    """The status of the run named ``run_name``, or None while the store or run does not exist yet.

    Read with sqlite3 in read-only mode: an MlflowClient would create and migrate the schema if the
    session under test had not yet, and two processes creating MLflow's tables at once make one of
    them fail with "table ... already exists" (this test failed that way in CI)."""
    import sqlite3
    from contextlib import closing

    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            row = con.execute("SELECT status FROM runs WHERE name = ?", (run_name,)).fetchone()
    except sqlite3.OperationalError as e:
        if str(e).startswith(("unable to open database file", "no such table")):  # not created yet
            return None
        raise  # e.g. "no such column": the schema this reader expects has changed
    return row[0] if row else None


def interrupt_the_sleepy_case(
    write_study, tmp_path, signum, workers=(), preexec_fn=None, sleepy="sleepy"
) -> tuple[str, int, float]:
    """Start a session of a quick case and a sleepy one (the learner ``sleepy``, or another from
    ``tests/broken``), send ``signum`` to its (controller) process once the sleepy learner says it
    is ready for it: (output, exit status, seconds from the signal to the exit)."""
    import subprocess
    import time

    from tests.conftest import ROOT, benchmark_command

    path = write_study(study(seeds=[0], learners={"random": {}, sleepy: {}}))
    ready = tmp_path / "sleepy_is_ready"
    cmd, env = benchmark_command(["--configs", str(path), *workers], tmp_path, env={"BROKEN_LEARNER_READY": str(ready)})
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the sleepy case never got going:\n" + proc.communicate()[0][-3000:])
            time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
        return out, proc.returncode, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_marks_the_running_case_and_the_session_killed(write_study, tmp_path):
    import signal

    from tests.conftest import heed_sigint

    out, status, _ = interrupt_the_sleepy_case(write_study, tmp_path, signal.SIGINT, preexec_fn=heed_sigint)
    assert status == 2, out[-3000:]  # pytest's "interrupted"
    _, parents, children = runs_of(tmp_path)
    assert {r.info.run_name: r.info.status for r in children} == {
        "tiny-s0-random": "FINISHED",
        "tiny-s0-sleepy": "KILLED",
    }
    assert parents[0].info.status == "KILLED"


@pytest.mark.parametrize(
    "workers, sleepy",
    [([], "swallows_stop"), (["-n", "2"], "swallows_stop"), (["-n", "2"], "stuck_in_c")],
    ids=["one-process", "two-workers", "two-workers-case-in-c"],
)
def test_sigterm_ends_the_running_case_and_the_session_killed_with_the_reason(write_study, tmp_path, workers, sleepy):
    """A real SIGTERM to the session's (controller) process, as timeout, kill or a cancelled CI job
    send: handled as Ctrl-C, the workers stop, nothing is left RUNNING for a later session to find,
    and the stopped case's reason says SIGTERM (``harness.execution.interrupts``), even where

    - the KeyboardInterrupt it raised was swallowed (``swallows_stop``, as by JAX's bare ``except:``
      around a freshly compiled executable): the next check point raises it again;
    - under xdist, the case was in one long C call until execnet's SIGINT came too (``stuck_in_c``),
      so its worker ran the SIGINT's handler first."""
    import signal

    out, status, seconds = interrupt_the_sleepy_case(write_study, tmp_path, signal.SIGTERM, workers, sleepy=sleepy)
    assert seconds < 30  # the sleepy case (120 s) was stopped, not waited for
    assert status == 2, out[-3000:]  # pytest's "interrupted"
    _, parents, children = runs_of(tmp_path)
    status_of = {r.info.run_name: r.info.status for r in children}
    assert status_of[f"tiny-s0-{sleepy}"] == "KILLED" and status_of.get("tiny-s0-random") in (
        "FINISHED",
        "KILLED",
        None,
    )
    stopped = next(r for r in children if r.info.run_name == f"tiny-s0-{sleepy}")
    assert stopped.data.tags["failure_reason"] == "KeyboardInterrupt: SIGTERM"
    assert parents[0].info.status == "KILLED"


# about an hour of work on this machine: it can only end through its time limit
SLOW_SVGD = {"n_particles": 20, "n_grad_mc_samples": 128, "steps": 1_000_000}


def test_a_case_past_its_timeout_fails_and_the_others_go_on(write_study, tmp_path):
    s = study(seeds=[0], timeout_s=8, learners={"random": {}, "svgd": SLOW_SVGD})
    # the study's timeout_s takes precedence over --case-timeout (which would fail both cases)
    proc = run_pytest(["--configs", str(write_study(s)), "--case-timeout", "1e-9"], tmp_path)
    assert proc.returncode == 1
    assert (outcome(proc.stdout)["failed"], outcome(proc.stdout)["passed"]) == (1, 1), proc.stdout[-3000:]
    # one process (no -n): progress is shown without -s
    assert re.search(r"tiny-s0-svgd: step \d+/1000000 \(\d+ steps/s\)", proc.stderr), proc.stderr[-2000:]
    _, parents, children = runs_of(tmp_path)
    status = {r.info.run_name: r.info.status for r in children}
    assert status == {"tiny-s0-random": "FINISHED", "tiny-s0-svgd": "FAILED"}
    slow = next(r for r in children if r.info.run_name == "tiny-s0-svgd")
    assert "ran past its timeout_s = 8 s" in slow.data.tags["failure_reason"]
    assert "at step" in slow.data.tags["failure_reason"]


def test_command_line_case_timeout_applies_to_studies_without_one(write_study, tmp_path):
    s = study(seeds=[0], learners={"svgd": SLOW_SVGD})
    proc = run_pytest(["--configs", str(write_study(s)), "--case-timeout", "3"], tmp_path)
    assert proc.returncode == 1 and "ran past its timeout_s = 3 s" in proc.stdout


def test_convergence_curves_are_metric_history(write_study, tmp_path):
    # 200 steps: by step 100 this case's particles are acyclic, so the points differ (at 50 all are
    # cyclic and score the fallback values)
    s = study(seeds=[0], learners={"svgd": {"n_particles": 3, "steps": 200, "eval_every": 50}})
    path = write_study(s)
    proc = run_pytest(
        ["--configs", str(path), "--jax-cache", "off"], tmp_path, env={"HARNESS_JAX_CACHE": str(tmp_path / "jax_cache")}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not (tmp_path / "jax_cache").exists()  # off: no persistent cache, not even the default one
    client, _, children = runs_of(tmp_path)
    run = children[0]
    # each recorded point is what the same case ends with when it runs only that many steps
    # (svgd's particles are uniformly weighted, as the curves weight them)
    shorter = {step: run_case(load_study(path, {"learners.svgd.steps": step})[0]).metrics for step in (50, 100, 150)}
    for metric in ("eshd", "auroc", "n_edges"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))
        assert [step for step, _ in history] == [50, 100, 150, 200]
        assert history[-1][1] == run.data.metrics[metric]  # the last point is the final value
        assert len({value for _, value in history}) > 1, history  # a curve, not one value
        for step, value in history[:-1]:
            assert value == pytest.approx(shorter[step][metric], rel=1e-9), (metric, step)


def test_reuse_runs_only_what_an_interrupted_study_is_missing(write_study, tmp_path):
    s = study(
        name="long",
        seeds={"start": 0, "stop": 5},
        sweep={"data.graph.n_vars": [5, 6]},
        learners={"random": {"n_particles": 4}},
    )
    path = write_study(s)
    # an interrupted first session: seeds 0-2 finished, seed 3 failed (timed out), seed 4 never ran
    first = run_pytest(["--configs", str(path), "-k", "s0 or s1 or s2"], tmp_path)
    assert first.returncode == 0, first.stdout[-2000:]
    failed = run_pytest(["--configs", str(path), "-k", "s3", "--case-timeout", "1e-9"], tmp_path)
    assert failed.returncode == 1
    client, _, before = runs_of(tmp_path)
    assert sorted(r.info.status for r in before).count("FAILED") == 2 and len(before) == 8

    again = run_pytest(["--configs", str(path), "--reuse", "--results-csv", str(tmp_path / "r.csv")], tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert outcome(again.stdout)["passed"] == 10 and "reused 6 case(s)" in again.stdout
    _, parents, after = runs_of(tmp_path)
    new = [r for r in after if r.info.run_id not in {b.info.run_id for b in before}]
    assert sorted(r.info.run_name for r in new) == sorted(f"long-{d}-s{seed}-random" for d in (5, 6) for seed in (3, 4))
    assert all(r.info.status == "FINISHED" for r in new)
    finished = [r for r in after if r.info.status == "FINISHED"]
    assert len({r.info.run_name for r in finished}) == len(finished) == 10  # no case twice
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 10 and sum(r["reused"] == "True" for r in rows) == 6
    assert all(r["metrics.eshd"] for r in rows)

    # a reused run is checked against the thresholds of today's study (they are not in the hash);
    # a run recorded by another harness version is not reused but run again
    other = next(r for r in after if r.info.run_name == "long-5-s0-random" and r.info.status == "FINISHED")
    client.set_tag(other.info.run_id, "harness_version", "0.0.1-another")
    strict = run_pytest(
        [
            "--configs",
            str(path),
            "--reuse",
            "-k",
            "long-5-s0- or long-5-s1-",
            "--override",
            "thresholds={random: {eshd: {max: 0}}}",
        ],
        tmp_path,
    )
    assert strict.returncode == 1
    assert (
        outcome(strict.stdout)["failed"] == 2
        and "reused 1 case(s) from earlier runs (--reuse): long-5-s1-random" in strict.stdout
    )
    assert "long-5-s1-random: eshd = " in strict.stdout and "is above its max 0" in strict.stdout
    _, _, last = runs_of(tmp_path)
    rerun = [r for r in last if r.info.run_id not in {a.info.run_id for a in after}]
    assert [r.info.run_name for r in rerun] == ["long-5-s0-random"]
    assert rerun[0].data.tags["harness_version"] != "0.0.1-another"


def test_gpus_option_spreads_the_workers_over_the_named_gpus(write_study, tmp_path):
    """--gpus 3,5 with three workers: gw0 and gw2 share GPU 3 (so neither preallocates), gw1 has
    GPU 5 alone. No GPU needed: the probe learner writes down the environment its worker got."""
    probe = tmp_path / "probe.jsonl"
    path = write_study(study(seeds={"start": 0, "stop": 6}, learners={"env_probe": {}}))
    proc = run_pytest(
        ["--configs", str(path), "-n", "3", "--gpus", "3,5"], tmp_path, env={"HARNESS_PROBE_FILE": str(probe)}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    seen = [json.loads(line) for line in probe.read_text().splitlines()]
    expected = {"gw0": ("3", "false"), "gw1": ("5", None), "gw2": ("3", "false")}
    assert len(seen) == 6 and {s["worker"] for s in seen} == set(expected)
    for s in seen:
        gpu, preallocate = expected[s["worker"]]
        assert (s["CUDA_VISIBLE_DEVICES"], s["XLA_PYTHON_CLIENT_PREALLOCATE"], s["HARNESS_DEVICE"]) == (
            gpu,
            preallocate,
            f"gpu:{gpu}",
        ), s


def test_one_session_holds_several_experiments_and_drops_a_parent_without_cases(write_study, tmp_path):
    from mlflow.entities import ViewType

    # alpha's truth has no edge: its case passes its eshd threshold and logs all but auroc and auprc
    a = write_study(
        study(name="alpha", experiment="exp_a", seeds=[EMPTY_TRUTH_SEED], thresholds={"random": {"eshd": {"max": 99}}}),
        "a.yaml",
    )
    b = write_study(study(name="beta", experiment="exp_b", seeds=[0, 1]), "b.yaml")
    both = ["--configs", str(a), "--configs", str(b)]

    # -k selects nothing of exp_b: its parent, opened before the workers started, is deleted
    only_a = run_pytest([*both, "-n", "2", "-k", "alpha"], tmp_path)
    assert only_a.returncode == 0, only_a.stdout[-3000:]
    client, parents_a, children_a = runs_of(tmp_path, "exp_a")
    assert len(parents_a) == 1 and [r.info.run_name for r in children_a] == [f"alpha-s{EMPTY_TRUTH_SEED}-random"]
    empty = children_a[0].data
    assert (
        empty.tags["thresholds"] == "passed"
        and "ground-truth graph has no possible edge" in empty.tags["metrics_not_logged"]
    )
    assert {"eshd", "n_cyclic", "negll_obs", "negll_intrv"} <= set(empty.metrics)
    assert not {"auroc", "auprc"} & set(empty.metrics)
    assert runs_of(tmp_path, "exp_b")[1:] == ([], [])
    exp_b = client.get_experiment_by_name("exp_b").experiment_id
    assert [r.info.lifecycle_stage for r in client.search_runs([exp_b], run_view_type=ViewType.ALL)] == ["deleted"]

    # without -k: one parent per experiment, named after the same session, each with its own cases
    proc = run_pytest(both, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    latest = {}
    for experiment, names in (
        ("exp_a", [f"alpha-s{EMPTY_TRUTH_SEED}-random"]),
        ("exp_b", ["beta-s0-random", "beta-s1-random"]),
    ):
        _, parents, children = runs_of(tmp_path, experiment)
        parent = max(parents, key=lambda r: r.info.start_time)
        mine = sorted(c.info.run_name for c in children if c.data.tags[PARENT_TAG] == parent.info.run_id)
        assert mine == names
        assert parent.data.metrics["random.n_cases"] == len(names)  # aggregates of its own cases only
        latest[experiment] = parent
    assert latest["exp_a"].info.run_name == latest["exp_b"].info.run_name != parents_a[0].info.run_name
