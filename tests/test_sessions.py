"""Many sessions on one store: simultaneous starts on a fresh store, runs of dead sessions ended by
a later one (and a live session's never), and what a session says before it runs (``requires``,
the plan with its time estimate). Real pytest sessions on a real SQLite store."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.conftest import ROOT, benchmark_command, outcome, run_pytest, tiny_study
from tests.test_plugin import runs_of, status_read_only

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # whatever machine runs the tests


@pytest.mark.integration
def test_sessions_started_at_the_same_moment_on_a_fresh_store_all_record(write_study, tmp_path):
    """Three sessions on a fresh store (and no store template yet: they race to build that too),
    made to meet by a test-only plugin at the harness's hooks: each waits until all three are about
    to create the store, and again until all are about to open their first run."""
    n = 3
    paths = [write_study(tiny_study(name=f"at_once{i}", seeds=[0, 1]), f"s{i}.yaml") for i in range(n)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    meet = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HARNESS_TEST_BARRIER_DIR": str(barrier),
        "HARNESS_TEST_BARRIER_N": str(n),
    }
    procs = []
    for path in paths:
        cmd, env = benchmark_command(["--configs", str(path), "-p", "tests.barrier_plugin"], tmp_path, meet)
        procs.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    for hook in ("store", "first_run"):  # every session arrived, and none went on before the last arrived
        times = [list(map(float, f.read_text().split())) for f in barrier.glob(f"{hook}.*")]
        assert len(times) == n and all(len(t) == 2 for t in times), (hook, times)
        assert min(released for _, released in times) >= max(arrived for arrived, _ in times)
    _, parents, children = runs_of(tmp_path)
    assert len(parents) == n
    assert sorted(r.info.run_name for r in children) == sorted(
        f"at_once{i}-s{s}-random" for i in range(n) for s in (0, 1)
    )


@pytest.mark.integration
def test_a_dead_sessions_runs_are_ended_by_a_later_session_and_a_live_ones_are_not(write_study, tmp_path):
    # stale after 10 s without a beat: a live run beats every 2 s, a margin a loaded 2-core machine keeps
    # (0.5 s beats, stale after 2.5 s, were timing-fragile there)
    beat = {"HARNESS_HEARTBEAT_S": "2"}
    slow = write_study(tiny_study(name="slow", seeds=[0], learners={"sleepy": {}}), "slow.yaml")
    quick = write_study(tiny_study(name="quick", seeds=[0]), "quick.yaml")
    cmd, env = benchmark_command(["--configs", str(slow)], tmp_path, beat)
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while status_read_only(tmp_path / "mlflow.db", "slow-s0-sleepy") != "RUNNING":
            assert time.monotonic() < deadline and first.poll() is None, "the sleepy case never started running"
            time.sleep(0.5)
        # a session while the first lives (several heartbeat intervals long): the first's runs untouched
        proc = run_pytest(["--configs", str(quick)], tmp_path, beat)
        assert proc.returncode == 0 and "ended FAILED" not in proc.stdout, proc.stdout[-3000:]
        assert status_read_only(tmp_path / "mlflow.db", "slow-s0-sleepy") == "RUNNING"
        first.send_signal(signal.SIGKILL)  # no chance to end its runs
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    time.sleep(11)  # past 5 intervals without a beat
    proc = run_pytest(["--configs", str(quick)], tmp_path, beat)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ended FAILED 2 run(s) left RUNNING by processes that died" in proc.stdout, proc.stdout[-3000:]
    client, parents, children = runs_of(tmp_path)
    dead = next(r for r in children if r.info.run_name == "slow-s0-sleepy")
    assert dead.info.status == "FAILED" and "no heartbeat for" in dead.data.tags["failure_reason"]
    dead_parent = client.get_run(dead.data.tags["mlflow.parentRunId"])
    assert dead_parent.info.status == "FAILED"
    assert sorted(r.info.status for r in parents) == ["FAILED", "FINISHED", "FINISHED"]
    assert all(r.info.status == "FINISHED" for r in children if r.info.run_name == "quick-s0-random")


@pytest.mark.integration
def test_a_study_that_requires_a_gpu_is_skipped_without_one_and_the_plan_says_what_runs(write_study, tmp_path):
    big = write_study(tiny_study(name="big", seeds=[0], requires=["gpu"]), "big.yaml")
    small = write_study(tiny_study(name="small", seeds=[0]), "small.yaml")
    args = ["--configs", str(big), "--configs", str(small), "-rs"]
    proc = run_pytest(args, tmp_path, NO_GPU)
    assert proc.returncode == 0 and "1 passed, 1 skipped" in proc.stdout, proc.stdout[-3000:]
    assert "study 'big' requires a GPU" in proc.stdout and "--run-anywhere runs it anyway" in proc.stdout
    assert "harness: 1 case(s) to run, 1 skipped, on 1 worker(s)" in proc.stdout
    assert "small: 1 to run, no earlier run to estimate from" in proc.stdout
    assert "big: 0 to run; 1 skipped: study 'big' requires a GPU" in proc.stdout
    # anywhere, on two workers: both run; small's estimate comes from its earlier run
    proc = run_pytest([*args, "--run-anywhere", "-n", "2"], tmp_path, NO_GPU)
    assert proc.returncode == 0 and outcome(proc.stdout)["passed"] == 2, proc.stdout[-3000:]
    assert "harness: 2 case(s) to run, 0 skipped, on 2 worker(s)" in proc.stdout
    assert re.search(r"small: 1 to run, ~\d+ s for the 1 with earlier runs", proc.stdout), proc.stdout[-3000:]
    assert "big: 1 to run, no earlier run to estimate from" in proc.stdout
    assert re.search(
        r"estimate from earlier runs of the same config hash: ~\d+ s of wall time for 1 of 2 case\(s\)", proc.stdout
    )
    # --reuse: the plan counts what earlier runs stand for, and runs only the rest
    changed = write_study(tiny_study(name="small", seeds=[0, 1]), "small.yaml")
    proc = run_pytest(["--configs", str(big), "--configs", str(changed), "--reuse", "-rs"], tmp_path, NO_GPU)
    assert proc.returncode == 0 and "2 passed, 1 skipped" in proc.stdout, proc.stdout[-3000:]
    assert "harness: 1 case(s) to run, 1 reused, 1 skipped, on 1 worker(s)" in proc.stdout, proc.stdout[-3000:]
    assert "small: 1 to run, no earlier run to estimate from, 1 reused" in proc.stdout


@pytest.mark.parametrize("bad", [["cpu"], "gpu"])
def test_requires_names_only_known_resources(write_study, bad):
    from harness.study.loading import StudyFileError, load_study

    with pytest.raises(StudyFileError, match=r"key 'requires"):
        load_study(write_study(tiny_study(requires=bad)))
