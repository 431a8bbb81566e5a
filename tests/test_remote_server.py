"""The harness against a real `mlflow server` on 127.0.0.1 (SQLite backend in a temp dir)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.store import PARENT_TAG
from harness.tracking import ARTIFACTS
from tests.conftest import run_pytest, tiny_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1. The port is free when chosen but could be taken before
    the server binds it: a start that fails on an address in use is retried on a new port."""
    for _attempt in range(3):
        proc, uri, log_path = start_mlflow_server(tmp_path, free_port())
        try:
            if wait_until_healthy(proc, uri):
                yield uri
                return
            log = log_path.read_text()
            if "in use" not in log.lower():
                pytest.fail(f"mlflow server did not start:\n{log[-3000:]}")
        finally:
            stop(proc)
    pytest.fail("mlflow server: three ports in a row were taken before it could bind them")


def start_mlflow_server(tmp_path, port: int):
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
             "--artifacts-destination", str(tmp_path / "server_artifacts")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}", log_path


def wait_until_healthy(proc, uri: str, timeout_s: float = 90) -> bool:
    """True once the server answers its health check; False if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{uri}/health", timeout=2).read() == b"OK":
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_small_study_on_a_remote_server_with_two_workers(mlflow_server, write_study, tmp_path):
    study = tiny_study(name="remote", learners={"random": {"n_particles": 4}, "svgd": {"n_particles": 2, "steps": 10}})
    path = write_study(study)
    proc = run_pytest(["--configs", str(path), "-n", "2"], tmp_path, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("dibs_vs_ensembles")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("harness.role") == "session"]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == [
        "remote-s0-random", "remote-s0-svgd", "remote-s1-random", "remote-s1-svgd"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"eshd", "auroc", "negll_obs"} <= set(run.data.metrics)
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == sorted(ARTIFACTS)
    assert "svgd.eshd_mean" in client.get_run(parents[0].info.run_id).data.metrics
    # artifacts went through the server into its own artifact store
    assert any((tmp_path / "server_artifacts").rglob("particles.npz"))
