"""The harness against a real shared tracking server on 127.0.0.1: `mlflow server` on a real
PostgreSQL, with MLflow's basic authentication (README "More than one machine")."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from harness.store import PARENT_TAG
from harness.tracking import ARTIFACTS
from tests.conftest import run_pytest, tiny_study
from tests.services import mlflow_server, postgres_database


@pytest.fixture
def shared_server(tmp_path):
    """The README's recipe for a store that many machines share: ``mlflow server`` on a PostgreSQL
    database, artifacts served by the server, MLflow's basic authentication. Yields (url, user,
    password)."""
    password = secrets.token_urlsafe(16)
    with postgres_database() as backend:
        env = {"MLFLOW_AUTH_ADMIN_PASSWORD": password, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
        with mlflow_server(backend, tmp_path, ["--app-name", "basic-auth"], env) as url:
            yield url, "admin", password


def test_small_study_on_a_shared_server_with_two_workers(shared_server, write_study, tmp_path, monkeypatch):
    url, user, password = shared_server
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

    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(url)
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
    # the credentials are in no param, tag or artifact
    for run in [*children, *parents]:
        assert password not in repr(run.data.params) + repr(run.data.tags)
    stored = [p for p in (tmp_path / "server_artifacts").rglob("*") if p.is_file()]
    assert stored and not any(password.encode() in p.read_bytes() for p in stored)
