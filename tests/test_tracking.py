"""The tracking helpers on a real SQLite MLflow store in a temp dir."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from harness.analysis.summary import aggregate_metrics
from harness.tracking.case_runs import (
    ARTIFACTS,
    TRUNCATION_MARKER,
    flatten_config,
    log_artifacts_selectively,
    plain_numpy,
)
from harness.tracking.records import CaseRecord
from harness.tracking.sessions import open_session
from harness.tracking.store import resolve_uri, sqlite_uri


def test_flatten_nested_mappings_to_dotted_keys():
    assert flatten_config({"a": {"b": {"c": 1}, "d": 2.5}, "e": "x"}) == {"a.b.c": "1", "a.d": "2.5", "e": "x"}


def test_flatten_lists_none_and_empty():
    flat = flatten_config(
        {"l": [1, 2, 3], "nested": [[1, 2], [3]], "none": None, "empty": [], "m": {}, "objs": [{"a": 1}, {"b": [2]}]}
    )
    assert flat["l"] == "1,2,3"
    assert flat["nested"] == "[1,2],[3]"
    assert flat["none"] == "None"
    assert flat["empty"] == ""
    assert flat["m"] == "{}"
    assert flat["objs"] == "{a: 1},{b: [2]}"


def test_flatten_truncates_long_values_with_a_marker():
    flat = flatten_config({"long": "x" * (MAX_PARAM_VAL_LENGTH + 100)})
    assert len(flat["long"]) == MAX_PARAM_VAL_LENGTH
    assert flat["long"].endswith(TRUNCATION_MARKER)


def test_flatten_replaces_characters_mlflow_refuses_in_keys():
    flat = flatten_config({"we!rd": {"k:e*y": 1}, "ok key/1.x-y_z": 2})
    assert flat == {"we_rd.k_e_y": "1", "ok key/1.x-y_z": "2"}


@pytest.fixture
def client_and_run(tmp_path):
    uri = sqlite_uri(tmp_path / "mlflow.db")
    session = open_session(uri, ["exp"], "session-test")
    client = MlflowClient(uri)
    ids = session.parents["exp"]
    run = client.create_run(ids["experiment_id"], run_name="case")
    return client, run.info.run_id


def test_log_artifacts_selectively_logs_only_the_allowed_files(client_and_run, tmp_path):
    client, run_id = client_and_run
    out = tmp_path / "out"
    out.mkdir()
    for name in ("config.yaml", "particles.npz", "plot.png", "notes.txt"):
        (out / name).write_text(name)
    logged = log_artifacts_selectively(client, run_id, out)
    assert sorted(logged) == ["config.yaml", "particles.npz"]
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["config.yaml", "particles.npz"]
    assert set(logged) <= set(ARTIFACTS)


def test_open_session_reuses_experiments_and_puts_artifacts_under_mlruns_dir(tmp_path):
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    (tmp_path / "mlruns").mkdir()
    a = open_session(uri, ["e1", "e2", "e1"], "s1")
    b = open_session(uri, ["e1"], "s2")
    assert sorted(a.parents) == ["e1", "e2"]
    assert a.parents["e1"]["experiment_id"] == b.parents["e1"]["experiment_id"]
    assert a.parents["e1"]["run_id"] != b.parents["e1"]["run_id"]
    exp = MlflowClient(uri).get_experiment(a.parents["e1"]["experiment_id"])
    assert exp.artifact_location.startswith((tmp_path / "mlruns").as_uri())


def test_aggregates_are_per_learner_with_prefixed_names():
    records = [
        CaseRecord(case_id="st-s0-svgd", learner="svgd", seed=0, metrics={"eshd": 1.0, "auroc": 0.9}),
        CaseRecord(case_id="st-s1-svgd", learner="svgd", seed=1, metrics={"eshd": 3.0, "auroc": 0.7}),
        CaseRecord(case_id="st-s0-ensemble", learner="ensemble", seed=0, metrics={"eshd": 2.0, "auroc": 0.8}),
    ]
    agg = aggregate_metrics(records)
    assert agg["svgd.eshd_mean"] == 2.0 and agg["svgd.eshd_std"] == pytest.approx(np.sqrt(2))
    assert agg["ensemble.auroc_mean"] == 0.8 and agg["ensemble.eshd_std"] == 0.0
    assert agg["svgd.n_cases"] == 2


def test_plain_numpy_pickles_without_jax_types():
    import jax.numpy as jnp

    tree = [(jnp.ones(2), jnp.zeros((1, 2))), {"b": jnp.arange(3)}]
    plain = plain_numpy(tree)
    assert type(plain) is list and type(plain[0]) is tuple
    assert all(type(a) is np.ndarray for a in (plain[0][0], plain[0][1], plain[1]["b"]))


def test_tracking_uri_order_option_then_environment_then_local_store(monkeypatch, tmp_path):
    """DESIGN.md and docs/mlflow.md: ``--mlflow-uri`` > ``MLFLOW_TRACKING_URI`` > ``mlruns/mlflow.db``
    (absolute)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_uri("sqlite:///other.db", tmp_path) == "sqlite:///other.db"
    assert resolve_uri(None, tmp_path) == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_uri("sqlite:///other.db", tmp_path) == "sqlite:///other.db"
    monkeypatch.chdir(tmp_path / "..")
    assert resolve_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "mlruns").is_dir()


def _tables(db):
    import sqlite3

    with sqlite3.connect(db) as c:
        # the clauses of a CREATE statement sorted: MLflow's migrations order a table's CHECK
        # constraints differently from one process to the next (they come from a set)
        schema = [
            (kind, name, sorted((sql or "").split(", \n")))
            for kind, name, sql in c.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_sequence' ORDER BY name"
            )
        ]
        rows = {
            name: sorted(map(repr, c.execute(f'SELECT * FROM "{name}"')))
            for kind, name, _ in schema
            if kind == "table" and name not in ("experiments", "sqlite_sequence")
        }
        experiments = c.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments"
        ).fetchall()
    c.close()
    return schema, rows, experiments


def test_a_store_from_the_template_is_the_store_mlflow_creates(tmp_path, monkeypatch):
    """A new store is a copy of an empty template (not MLflow's migrations each time): the same
    schema and revision, the Default experiment with this store's artifact location, the same ids
    after it, whichever way the store began; and a template is built where none is yet."""
    from harness.tracking.store import empty_store_template, prepare_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    empty_store_template()  # built from another directory than the stores' sessions run in
    monkeypatch.chdir(tmp_path)
    by_mlflow, by_template = tmp_path / "mlflow.db", tmp_path / "template.db"
    MlflowClient(sqlite_uri(by_mlflow)).search_experiments()
    prepare_store(sqlite_uri(by_template))
    assert empty_store_template().parent == tmp_path / "cache" / "dibs-bench"
    assert _tables(by_template) == _tables(by_mlflow)
    assert _tables(by_template)[2] == [(0, "Default", (tmp_path / "mlruns" / "0").as_posix(), "active")]
    ids = [MlflowClient(sqlite_uri(db)).create_experiment("x") for db in (by_mlflow, by_template)]
    assert ids[0] == ids[1] == "1"
