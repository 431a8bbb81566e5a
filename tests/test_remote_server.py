"""The harness against a real shared tracking server on 127.0.0.1: `mlflow server` on a real
PostgreSQL, with MLflow's basic authentication (docs/cluster.md)."""

from __future__ import annotations

import csv
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from harness.tracking.case_runs import ARTIFACTS
from harness.tracking.tags import PARENT_TAG
from tests.conftest import ROOT, benchmark_command, heed_sigint, run_pytest, tiny_study
from tests.services import missing, mlflow_server, postgres_database

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


@pytest.fixture(scope="session")  # one server per test worker that runs these tests
def shared_server(tmp_path_factory):
    """docs/cluster.md's recipe for a store that many machines share: ``mlflow server`` on a PostgreSQL
    database, artifacts served by the server, MLflow's basic authentication. Yields (url, user,
    password, the server's directory)."""
    password = secrets.token_urlsafe(16)
    workdir = tmp_path_factory.mktemp("server")
    # docs/cluster.md's auth.ini, but the users in a SQLite file beside the server (not a second
    # PostgreSQL database); its credential cache took the server's CPU for a 4-case session from
    # 16 s to 3 s here (each uncached request checks the password with scrypt, ~0.1 s)
    auth_ini = workdir / "auth.ini"
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///basic_auth.db\n"
        "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    with postgres_database() as backend:
        env = {
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        with mlflow_server(backend, workdir, ["--app-name", "basic-auth"], env) as url:
            yield url, "admin", password, workdir


def client_of(shared_server, monkeypatch) -> MlflowClient:
    url, user, password, _ = shared_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(url)


def runs_in(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    return (
        [r for r in runs if r.data.tags.get("harness.role") == "session"],
        [r for r in runs if PARENT_TAG in r.data.tags],
    )


def test_small_study_on_a_shared_server_with_two_workers(shared_server, write_study, tmp_path, monkeypatch):
    url, user, password, server_dir = shared_server
    # without credentials the server refuses
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)

    study = tiny_study(name="remote", learners={"random": {"n_particles": 4}, "svgd": {"n_particles": 2, "steps": 10}})
    path = write_study(study)
    credentials = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    proc = run_pytest(["--configs", str(path), "-n", "2"], tmp_path, env={"MLFLOW_TRACKING_URI": url, **credentials})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
    assert password not in proc.stdout + proc.stderr

    client = client_of(shared_server, monkeypatch)
    parents, children = runs_in(client, "dibs_vs_ensembles")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == [
        "remote-s0-random",
        "remote-s0-svgd",
        "remote-s1-random",
        "remote-s1-svgd",
    ]
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"eshd", "auroc", "negll_obs"} <= set(run.data.metrics)
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == sorted(ARTIFACTS)
    assert "svgd.eshd_mean" in client.get_run(parents[0].info.run_id).data.metrics
    # artifacts went through the server into its own artifact store
    assert any((server_dir / "server_artifacts").rglob("particles.npz"))
    # the credentials are in no param, tag or artifact
    for run in [*children, *parents]:
        assert password not in repr(run.data.params) + repr(run.data.tags)
    stored = [p for p in (server_dir / "server_artifacts").rglob("*") if p.is_file()]
    assert stored and not any(password.encode() in p.read_bytes() for p in stored)


def slurm_available() -> None:
    if shutil.which("sbatch") is None or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        missing("no Slurm here: apt-get install slurm-wlm munge && scripts/local_slurm.sh start")


@pytest.mark.slurm
def test_a_study_as_a_slurm_job_array_lands_in_the_server_and_resumes(
    shared_server, write_study, tmp_path, monkeypatch
):
    slurm_available()
    url, user, password, _ = shared_server
    path = write_study(
        tiny_study(
            name="array",
            experiment="slurm_array",
            learners={"random": {"n_particles": 4}, "svgd": {"n_particles": 2, "steps": 10}},
            thresholds={"random": {"eshd": {"max": 99}}},
        )
    )
    env = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    folder, csv_path = tmp_path / "jobs", tmp_path / "cases.csv"
    args = ["--configs", str(path), "--executor", "slurm", "--slurm-folder", str(folder), "--slurm", "cpus_per_task=1"]
    proc = run_pytest([*args, "--results-csv", str(csv_path)], tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"submitted 4 case\(s\) as Slurm job array \d+", proc.stdout)
    client = client_of(shared_server, monkeypatch)
    parents, children = runs_in(client, "slurm_array")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == [
        "array-s0-random",
        "array-s0-svgd",
        "array-s1-random",
        "array-s1-svgd",
    ]
    for run in children:  # each recorded by its own array task
        assert run.info.status == "FINISHED" and run.data.tags["worker"].startswith("slurm ")
        assert run.data.tags["worker"] == f"slurm {run.data.tags['slurm_task']}"
        assert run.data.tags["thresholds"] == "passed" and "eshd" in run.data.metrics
    assert "random.eshd_mean" in client.get_run(parents[0].info.run_id).data.metrics
    rows = list(csv.DictReader(open(csv_path)))
    assert sorted(r["run_id"] for r in rows) == sorted(r.info.run_id for r in children)
    # the credentials are nowhere in the Slurm folder (scripts, pickles, logs)
    assert not any(password.encode() in p.read_bytes() for p in folder.rglob("*") if p.is_file())

    # resume: everything finished, nothing is submitted again
    proc = run_pytest([*args, "--reuse"], tmp_path, env)
    assert proc.returncode == 0 and "reused 4 case(s)" in proc.stdout, proc.stdout[-3000:]
    assert "submitted" not in proc.stdout
    assert len(runs_in(client, "slurm_array")[1]) == 4


def wait_until(condition, what: str, proc, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if proc.poll() is not None:
            pytest.fail(f"{what}: the session ended\n{proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, what
        time.sleep(1)
    return value


@pytest.mark.slurm
def test_slurm_time_limit_cancel_requeue_and_ctrl_c(shared_server, write_study, tmp_path, monkeypatch):
    """Three cases that would run for minutes, two at a time: Slurm's time limit ends one and
    ``scancel`` another (each case FAILED, saying why); the third is requeued (still one run for
    its case) and Ctrl-C of the session cancels it (KILLED)."""
    slurm_available()
    url, user, password, _ = shared_server
    path = write_study(tiny_study(name="killed", experiment="slurm_killed", seeds=[0, 1, 2], learners={"sleepy": {}}))
    env = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    job_name = f"harness-test-{secrets.token_hex(4)}"
    cmd, full_env = benchmark_command(
        [
            "--configs",
            str(path),
            "--executor",
            "slurm",
            "--slurm-folder",
            str(tmp_path / "jobs"),
            "--slurm",
            "cpus_per_task=1",
            "--slurm",
            f"name={job_name}",
        ],
        tmp_path,
        env,
    )
    client = client_of(shared_server, monkeypatch)

    def running(seed):
        return [
            r
            for r in runs_in(client, "slurm_killed")[1]
            if r.info.run_name == f"killed-s{seed}-sleepy" and r.info.status == "RUNNING"
        ]

    def ended(run):
        return client.get_run(run.info.run_id).info.status != "RUNNING"

    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=heed_sigint
    )
    try:
        timed, cancelled = (
            wait_until(lambda seed=seed: running(seed), "the sleepy tasks never started", proc)[0] for seed in (0, 1)
        )
        subprocess.run(["scontrol", "update", f"JobId={timed.data.tags['slurm_task']}", "TimeLimit=1"], check=True)
        subprocess.run(["scancel", cancelled.data.tags["slurm_task"]], check=True)
        requeued = wait_until(lambda: running(2), "the third task never started", proc)[0]  # on the freed core
        subprocess.run(["scontrol", "requeue", requeued.data.tags["slurm_task"]], check=True)
        again = wait_until(
            lambda: [r for r in running(2) if r.info.run_id != requeued.info.run_id],
            "the requeued task did not run again",
            proc,
        )
        wait_until(lambda: ended(timed) and ended(cancelled), "the killed tasks' runs were not ended", proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C of the submitting session cancels the rest
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            subprocess.run(["scancel", "--name", job_name])  # no task outlives a failed test
    assert proc.returncode == 2, out[-3000:]
    runs = runs_in(client, "slurm_killed")[1]
    status = {r.info.run_name: (r.info.status, r.data.tags.get("failure_reason", "")) for r in runs}
    assert len(runs) == 3, sorted(r.info.run_name for r in runs)  # the requeued case has one run, not two
    # submitit's handler names the time limit when it runs before the kill; when slurmctld's periodic
    # check sends the signal and the kill together, the controller ends the run with Slurm's TIMEOUT
    assert status["killed-s0-sleepy"][0] == "FAILED", status
    assert re.search(r"Slurm's time limit|without a result: TIMEOUT", status["killed-s0-sleepy"][1]), status
    assert status["killed-s1-sleepy"][0] == "FAILED", status
    assert re.search(r"Slurm ended task \d+_\d+ without a result: CANCELLED", status["killed-s1-sleepy"][1]), status
    assert status["killed-s2-sleepy"][0] == "KILLED", status
    assert client.get_run(requeued.info.run_id).info.lifecycle_stage == "deleted"
    assert next(r for r in runs if r.info.run_name == "killed-s2-sleepy").info.run_id == again[0].info.run_id
    assert again[0].data.tags["slurm_restarts"] == "1"
    array = timed.data.tags["slurm_task"].split("_")[0]
    assert subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True).stdout.strip() == ""


@pytest.mark.slurm
def test_reuse_after_the_submitting_session_died_waits_for_its_running_task(
    shared_server, write_study, tmp_path, monkeypatch
):
    slurm_available()
    url, user, password, _ = shared_server
    path = write_study(tiny_study(name="orphan", experiment="slurm_orphan", seeds=[0], learners={"slow": {}}))
    go = tmp_path / "the_slow_task_may_end"
    # the task runs until the resumed session has seen it running (a fixed 20 s was timing-fragile,
    # 60 s cost a minute of CI), at most 170 s
    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
        "BROKEN_LEARNER_GO": str(go),
        "HARNESS_SLOW_S": "170",
        "PYTHONUNBUFFERED": "1",
    }
    job_name = f"harness-test-{secrets.token_hex(4)}"
    args = [
        "--configs",
        str(path),
        "--executor",
        "slurm",
        "--slurm-folder",
        str(tmp_path / "jobs"),
        "--slurm",
        "cpus_per_task=1",
        "--slurm",
        f"name={job_name}",
    ]
    cmd, full_env = benchmark_command(args, tmp_path, env)
    client = client_of(shared_server, monkeypatch)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    resumed = None
    try:
        first = wait_until(lambda: runs_in(client, "slurm_orphan")[1], "the slow task never started", proc)[0]
        proc.kill()  # the submitting session dies mid-case; its task runs on
        proc.wait()
        resumed = subprocess.Popen(
            [*cmd, "--reuse"], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        out = ""
        for line in resumed.stdout:  # until the resumed session has looked at the running task
            out += line
            if "still running in an earlier session's array" in line:
                break
        go.touch()
        out += resumed.communicate(timeout=300)[0]
    finally:
        for p in (proc, resumed):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["scancel", "--name", job_name])
    assert resumed.returncode == 0, out[-3000:]
    assert "1 case(s) still running in an earlier session's array" in out, out[-3000:]
    assert "submitted" not in out and "reused 1 case(s)" in out
    children = runs_in(client, "slurm_orphan")[1]
    assert [r.info.run_id for r in children] == [first.info.run_id]  # waited for, not run again
    assert children[0].info.status == "FINISHED"


def test_the_slurm_executor_refuses_a_local_sqlite_store(write_study, tmp_path):
    path = write_study(tiny_study())
    proc = run_pytest(["--configs", str(path), "--executor", "slurm"], tmp_path)
    assert proc.returncode == 4  # usage error, before anything is submitted
    assert "--executor slurm records every case from the compute nodes" in proc.stderr
    assert "not the local SQLite file sqlite:///" in proc.stderr
