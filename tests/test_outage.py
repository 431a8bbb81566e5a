"""A tracking server gone for longer than the client retries, while cases finish: a real
``mlflow server`` on a real PostgreSQL (with MLflow's basic authentication, as docs/cluster.md sets
it up), stopped and started again on the same port. Every case must be in the store once after the
replay, its artifacts byte for byte what the case wrote, nothing left RUNNING, no password on disk."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.tracking import spool
from harness.tracking.case_runs import ARTIFACTS
from harness.tracking.tags import PARENT_TAG, ROLE_TAG
from tests.conftest import ROOT, benchmark_command, outcome, tiny_study
from tests.services import RestartableServer, postgres_database

pytestmark = pytest.mark.integration

# the client gives up after ~3 s (one retry, 1-2 s of back-off) instead of MLflow's minutes
SHORT_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "HARNESS_HEARTBEAT_S": "2",
}
OUTAGE_S = 20  # several times the client's retry budget


@pytest.fixture
def server(tmp_path):
    """A server of this test's own, on its own database, that the test may take down."""
    password = secrets.token_urlsafe(16)
    workdir = tmp_path / "server"
    workdir.mkdir()
    auth_ini = workdir / "auth.ini"
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///basic_auth.db\n"
        "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    env = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with postgres_database() as backend:
        srv = RestartableServer(backend, workdir, ["--app-name", "basic-auth"], env).start()
        try:
            yield srv, password
        finally:
            srv.stop()


def client_env(srv, password) -> dict:
    return {
        "MLFLOW_TRACKING_URI": srv.url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": password,
        **SHORT_RETRIES,
    }


def client_of(srv, password, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(srv.url)


def runs_in(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    return ([r for r in runs if r.data.tags.get(ROLE_TAG) == "session"], [r for r in runs if PARENT_TAG in r.data.tags])


def wait_for(path: Path, proc, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the session ended before {path.name}:\n{proc.stdout.read()[-4000:]}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.2)


def start_session(args, tmp_path, env):
    cmd, full_env = benchmark_command(args, tmp_path, env)
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout_s: float = 300) -> str:
    try:
        return proc.communicate(timeout=timeout_s)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_all_recorded_once(client, experiment, names, n_cases):
    parents, children = runs_in(client, experiment)
    assert sorted(r.info.run_name for r in children) == sorted(names)  # each case once
    assert all(r.info.status == "FINISHED" for r in [*children, *parents]), [
        (r.info.run_name, r.info.status) for r in [*children, *parents]
    ]
    assert len(parents) == 1 and parents[0].data.metrics["gated.n_cases"] == n_cases
    for run in children:
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == sorted(ARTIFACTS)
        assert {"eshd", "auroc"} <= set(run.data.metrics) and run.data.tags["thresholds"] == "passed"
    return children


def assert_same_artifacts(client, children, snapshot: Path, where: Path) -> int:
    """The replayed runs' artifacts against the spooled files as they were; returns how many runs."""
    by_uid = {r.data.tags.get(spool.RECORD_TAG): r for r in children}
    compared = 0
    for record_dir in snapshot.iterdir():
        record = json.loads((record_dir / "record.json").read_text())
        if record["kind"] != "case":
            continue
        run = by_uid[record["uid"]]
        for name in ARTIFACTS:
            got = client.download_artifacts(run.info.run_id, name, str(where / run.info.run_id))
            assert Path(got).read_bytes() == (record_dir / "artifacts" / name).read_bytes(), (run.info.run_name, name)
        compared += 1
    return compared


def assert_no_secret(directory: Path, password: str) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files and not any(password.encode() in p.read_bytes() for p in files)


def test_an_outage_mid_session_loses_nothing_when_the_server_returns_before_the_end(
    server, write_study, tmp_path, monkeypatch
):
    """Three cases one after another. Case 0's run is created, then the server goes; case 0 ends
    during the outage (its run finished in place later), case 1 starts and ends during it (never
    created), case 2 starts during it and ends after the server is back. The session replays the
    spool at its end: every case once, the parent's aggregates over all three."""
    srv, password = server
    gate, spool_dir = tmp_path / "gate", tmp_path / "spool"
    gate.mkdir()
    study = write_study(
        tiny_study(name="outage", experiment="outage", seeds=[0, 1, 2], learners={"gated": {"n_particles": 4}})
    )
    env = {**client_env(srv, password), "GATE_DIR": str(gate), "HARNESS_SPOOL": str(spool_dir)}
    proc = start_session(["--configs", str(study)], tmp_path, env)
    try:
        wait_for(gate / "started-0", proc)
        srv.stop()
        outage_started = time.monotonic()
        (gate / "go-0").touch()
        wait_for(gate / "started-1", proc)
        (gate / "go-1").touch()
        wait_for(gate / "started-2", proc)
        while len(spool.pending(spool_dir).records) < 2:  # cases 0 and 1 spooled
            assert proc.poll() is None and time.monotonic() - outage_started < 120
            time.sleep(0.2)
        snapshot = tmp_path / "snapshot"
        shutil.copytree(spool_dir, snapshot, ignore=shutil.ignore_patterns(".lock"))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        srv.start()
        outage_s = time.monotonic() - outage_started
        (gate / "go-2").touch()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert outcome(out)["passed"] == 3
    assert outage_s >= OUTAGE_S
    assert re.search(r"replayed 3 spooled run\(s\) from .*spool into http://127\.0\.0\.1:\d+", out), out[-3000:]
    client = client_of(srv, password, monkeypatch)
    children = assert_all_recorded_once(client, "outage", ["outage-s0-gated", "outage-s1-gated", "outage-s2-gated"], 3)
    assert assert_same_artifacts(client, children, snapshot, tmp_path / "got") == 2
    assert not spool.pending(spool_dir).records  # replayed and removed
    assert_no_secret(snapshot, password)
    print(
        f"\noutage of {outage_s:.0f} s mid-session (client gives up after ~3 s): 3 cases, 2 ended during it, "
        f"{len(children)} recorded once after the session's own replay"
    )


def test_a_server_that_never_returns_during_the_session_is_synced_later(server, write_study, tmp_path, monkeypatch):
    """Two xdist workers; the server goes after two runs are created and stays away until the
    session has ended: every case and the parent's end go to the spool, and ``dibs-bench sync``
    replays them (twice: the second finds nothing; a SIGTERM mid-replay loses nothing)."""
    srv, password = server
    gate, spool_dir = tmp_path / "gate", tmp_path / "spool"
    gate.mkdir()
    study = write_study(
        tiny_study(name="gone", experiment="gone", seeds=[0, 1, 2, 3], learners={"gated": {"n_particles": 4}})
    )
    env = {**client_env(srv, password), "GATE_DIR": str(gate)}
    proc = start_session(["--configs", str(study), "-n", "2", "--spool", str(spool_dir)], tmp_path, env)
    try:
        started = [gate / f"started-{s}" for s in range(4)]
        while sum(p.exists() for p in started) < 2:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        srv.stop()
        for s in range(4):
            (gate / f"go-{s}").touch()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert outcome(out)["passed"] == 4
    assert "FINISHED (spooled)" in out and f"dibs-bench sync --spool {spool_dir}" in out, out[-3000:]
    records = spool.pending(spool_dir).records
    assert sorted(r.kind for _, r in records) == ["case"] * 4 + ["session"]
    assert_no_secret(spool_dir, password)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(spool_dir, snapshot, ignore=shutil.ignore_patterns(".lock"))

    srv.start()
    sync = [sys.executable, "-m", "harness", "sync", "--spool", str(spool_dir)]
    cmd_env = {**benchmark_command([], tmp_path, client_env(srv, password))[1]}
    first = subprocess.Popen(sync, cwd=ROOT, env=cmd_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(4)  # imports take longer: the signal lands before or during the replay
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert not spool.pending(spool_dir).problems  # nothing half-removed or damaged
    done = subprocess.run(sync, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    again = subprocess.run(sync, cwd=ROOT, env=cmd_env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to replay" in again.stdout, again.stdout + again.stderr

    client = client_of(srv, password, monkeypatch)
    children = assert_all_recorded_once(client, "gone", [f"gone-s{s}-gated" for s in range(4)], 4)
    assert assert_same_artifacts(client, children, snapshot, tmp_path / "got") == 4
    assert sum(bool(r.info.run_id and r.data.tags.get(spool.RECORD_TAG)) for r in children) == 4
    print(
        f"\nserver gone until after the session: 4 cases on 2 workers, {len(records)} records spooled, "
        f"{len(children)} recorded once after dibs-bench sync (interrupted once by SIGTERM, then run twice)"
    )
    print(out[out.index("benchmark cases") :])


@pytest.mark.slurm
def test_a_slurm_array_spools_on_shared_disk_and_is_judged_from_its_records(server, write_study, tmp_path, monkeypatch):
    from tests.test_remote_server import slurm_available

    slurm_available()
    srv, password = server
    gate, folder = tmp_path / "gate", tmp_path / "jobs"
    gate.mkdir()
    study = write_study(
        tiny_study(
            name="arr",
            experiment="arr_outage",
            learners={"gated": {"n_particles": 4}},
            thresholds={"gated": {"eshd": {"max": 99}}},
        )
    )
    env = {**client_env(srv, password), "GATE_DIR": str(gate)}
    job_name = f"harness-test-{secrets.token_hex(4)}"
    proc = start_session(
        [
            "--configs",
            str(study),
            "--executor",
            "slurm",
            "--slurm-folder",
            str(folder),
            "--slurm",
            "cpus_per_task=1",
            "--slurm",
            f"name={job_name}",
        ],
        tmp_path,
        env,
    )
    try:
        wait_for(gate / "started-0", proc)
        wait_for(gate / "started-1", proc)
        srv.stop()
        (gate / "go-0").touch()
        (gate / "go-1").touch()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["scancel", "--name", job_name])
    assert proc.returncode == 0, out[-4000:]
    assert outcome(out)["passed"] == 2 and "FINISHED (spooled)" in out  # judged from the tasks' records
    spool_dir = folder / "spool"
    assert sorted(r.kind for _, r in spool.pending(spool_dir).records) == ["case", "case", "session"]
    assert_no_secret(spool_dir, password)

    srv.start()
    cmd_env = benchmark_command([], tmp_path, client_env(srv, password))[1]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "sync", "--spool", str(spool_dir)],
        cwd=ROOT,
        env=cmd_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "replayed 3 spooled run(s)" in done.stdout, done.stdout + done.stderr
    client = client_of(srv, password, monkeypatch)
    children = assert_all_recorded_once(client, "arr_outage", ["arr-s0-gated", "arr-s1-gated"], 2)
    assert all(r.data.tags["worker"].startswith("slurm ") for r in children)
    print(f"\nSlurm array, server gone while its 2 tasks ended: {len(children)} recorded once after dibs-bench sync")
