"""The spool (harness.tracking.spool): a case's run kept whole on disk while the store cannot be
reached, replayed once into a real MLflow SQLite store.

The outage here is a tracking server that is not there (an http URI on a port nobody listens on,
the client's retries cut to none); tests/test_outage.py stops and restarts a real server mid-session."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness import run_case
from harness.analysis.baseline import load_baseline
from harness.analysis.report import fetch_cases
from harness.analysis.summary import parent_metrics_of_runs
from harness.execution.executors import LiveCaseRun
from harness.study.loading import load_study
from harness.tracking import spool
from harness.tracking import tags as T
from harness.tracking.case_runs import ARTIFACTS, RunWriter, find_reusable
from harness.tracking.sessions import Session, open_session
from harness.tracking.store import sqlite_uri
from tests.conftest import ROOT, run_pytest, tiny_study
from tests.services import free_port

PASSWORD = "hunter2-not-a-real-password"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A real SQLite store with an open session, and the same session as seen through a tracking
    server that is down (credentials in its URI and in the environment, as a user would have them)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    uri = sqlite_uri(tmp_path / "mlruns" / "mlflow.db")
    session = open_session(uri, ["spooled"], "session-spool-test", spool=str(tmp_path / "spool"))
    session.heartbeat.stop()
    down = f"http://admin:{PASSWORD}@127.0.0.1:{free_port()}"
    offline = Session(uri=down, parents=session.parents, name=session.name, spool=session.spool)
    return uri, session, offline


@pytest.fixture
def cases(write_study):
    study = tiny_study(name="sp", experiment="spooled", learners={"random": {"n_particles": 4}, "crash": {}})
    return {c.id: c for c in load_study(write_study(study))}


@pytest.fixture(autouse=True)
def crash_learner(monkeypatch):
    monkeypatch.setenv("HARNESS_LEARNERS", "crash=tests.broken.crash")


def run_offline(offline, case, run_id=None):
    """The case run for real while the store is unreachable: its writer spools."""
    if run_id is None:
        writer = RunWriter.create(offline, case, "cpu", "test")
    else:  # the run was created before the outage
        writer = RunWriter(MlflowClient(offline.uri), run_id, None, offline, case, {})
    run = LiveCaseRun(writer, case)
    try:
        run.execute(run_case)
    except RuntimeError:
        pass  # the crash learner
    run.close()
    return run.record()


def replay(spool_dir, uri, offline):
    return spool.replay(spool_dir, uri, parent_metrics_of_runs, from_uri=offline.uri)


def case_runs(uri, name=None):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("spooled")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if T.PARENT_TAG in r.data.tags and (name is None or r.info.run_name == name)]


def test_a_case_whose_store_is_down_is_spooled_whole_and_replays_as_a_live_run(store, cases, tmp_path):
    uri, session, offline = store
    case = cases["sp-s0-random"]
    record = run_offline(offline, case)
    assert record.status == "FINISHED" and record.run_id is None and record.spooled
    assert record.metrics and not record.misses  # judged on its thresholds all the same
    spooled = tmp_path / "spool_copy"
    shutil.copytree(record.spooled, spooled)

    # owner-only, no secret anywhere
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert stat.S_IMODE((spooled / "record.json").stat().st_mode) == 0o600
    for path in (tmp_path / "spool").rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
    saved = json.loads((spooled / "record.json").read_text())
    assert saved["uri"].startswith("http://127.0.0.1:") and saved["run_id"] is None
    assert sorted(saved["artifacts"]) == sorted(ARTIFACTS)

    # the same case recorded live, for comparison
    live = LiveCaseRun(RunWriter.create(session, cases["sp-s1-random"], "cpu", "test"), cases["sp-s1-random"])
    live.execute(run_case)
    live.close()

    result = replay(tmp_path / "spool", uri, offline)
    assert not result.problems and not result.unreachable and len(result.replayed) == 1
    assert not (tmp_path / "spool" / saved["uid"]).exists()  # removed once the store confirmed it
    client = MlflowClient(uri)
    [run] = case_runs(uri, "sp-s0-random")
    [live_run] = case_runs(uri, "sp-s1-random")
    assert run.info.status == "FINISHED" and run.data.tags[T.PARENT_TAG] == session.parents["spooled"]["run_id"]
    assert run.info.start_time == saved["start_time"] and run.info.end_time == saved["end_time"]  # original times
    assert set(run.data.params) == set(live_run.data.params) and run.data.params == record.params
    assert set(run.data.metrics) == set(live_run.data.metrics)
    assert {k: run.data.metrics[k] for k in record.metrics} == pytest.approx(record.metrics)
    live_tags = set(live_run.data.tags) - {T.BEAT_TAG, T.INTERVAL_TAG}
    assert live_tags <= set(run.data.tags) and run.data.tags[spool.RECORD_TAG] == saved["uid"]
    for name in ARTIFACTS:  # byte for byte what the case wrote
        got = client.download_artifacts(run.info.run_id, name, str(tmp_path / "got"))
        assert open(got, "rb").read() == (spooled / "artifacts" / name).read_bytes(), name
    # the parent's aggregates were recomputed from the store, and --reuse sees the run
    parent = client.get_run(session.parents["spooled"]["run_id"])
    assert parent.data.metrics["random.n_cases"] == 2
    assert find_reusable(session, case).info.run_id == run.info.run_id
    # the report and the gate read it as they read a live run
    parent_id = session.parents["spooled"]["run_id"]
    reported = {c.case_id: c for c in fetch_cases(client, "spooled", parent_id)}
    assert sorted(reported) == ["sp-s0-random", "sp-s1-random"]
    assert reported["sp-s0-random"].metrics["eshd"] == record.metrics["eshd"]
    assert reported["sp-s0-random"].edge_probs is not None and reported["sp-s0-random"].g_true is not None
    gate = load_baseline(f"mlflow:{parent_id}", uri, ["spooled"])
    assert gate.cases["sp-s0-random"].metrics["auroc"] == record.metrics["auroc"]

    # replayed again: nothing to do, still one run
    again = replay(tmp_path / "spool", uri, offline)
    assert not again.replayed and len(case_runs(uri, "sp-s0-random")) == 1


def test_a_run_created_before_the_outage_is_finished_in_place(store, cases, tmp_path):
    uri, session, offline = store
    case = cases["sp-s0-random"]
    created = RunWriter.create(session, case, "cpu", "test")  # before the outage
    created._heartbeat.stop()
    record = run_offline(offline, case, run_id=created.run_id)
    assert record.spooled and record.run_id == created.run_id
    assert MlflowClient(uri).get_run(created.run_id).info.status == "RUNNING"

    result = replay(tmp_path / "spool", uri, offline)
    assert list(result.replayed.values()) == [created.run_id]
    [run] = case_runs(uri)
    assert run.info.run_id == created.run_id and run.info.status == "FINISHED"
    assert set(record.metrics) <= set(run.data.metrics)
    assert replay(tmp_path / "spool", uri, offline).replayed == {} and len(case_runs(uri)) == 1


def test_a_stale_ending_meanwhile_is_undone_by_the_replay(store, cases, tmp_path):
    """A later session ended the run FAILED (no heartbeat) before the spool was replayed."""
    uri, session, offline = store
    case = cases["sp-s0-random"]
    created = RunWriter.create(session, case, "cpu", "test")
    created._heartbeat.stop()
    run_offline(offline, case, run_id=created.run_id)
    client = MlflowClient(uri)
    client.set_tag(created.run_id, T.FAILURE_TAG, "no heartbeat")
    client.set_terminated(created.run_id, "FAILED")
    replay(tmp_path / "spool", uri, offline)
    run = client.get_run(created.run_id)
    assert run.info.status == "FINISHED" and T.FAILURE_TAG not in run.data.tags


def test_a_failing_case_is_spooled_failed_with_its_traceback(store, cases, tmp_path):
    uri, session, offline = store
    record = run_offline(offline, cases["sp-s0-crash"])
    assert record.status == "FAILED" and record.spooled and "deliberate failure" in record.error
    replay(tmp_path / "spool", uri, offline)
    [run] = case_runs(uri)
    assert run.info.status == "FAILED" and "deliberate failure" in run.data.tags[T.FAILURE_TAG]
    text = MlflowClient(uri).download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path / "tb"))
    assert "RuntimeError: deliberate failure" in open(text).read()


def test_a_parent_that_never_reached_the_store_is_created(store, cases, tmp_path):
    uri, _, offline = store
    never = Session(
        uri=offline.uri,
        parents={"spooled": {"experiment_id": "12345", "run_id": "f" * 32}},
        name="session-never-opened",
        spool=offline.spool,
    )
    run_offline(never, cases["sp-s0-random"])
    run_offline(never, cases["sp-s1-random"])
    result = replay(tmp_path / "spool", uri, never)
    assert len(result.replayed) == 2 and not result.problems
    client = MlflowClient(uri)
    parents = [
        r
        for r in client.search_runs([client.get_experiment_by_name("spooled").experiment_id])
        if r.info.run_name == "session-never-opened"
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # one parent for both
    assert parents[0].data.metrics["random.n_cases"] == 2
    assert {r.data.tags[T.PARENT_TAG] for r in case_runs(uri)} == {parents[0].info.run_id}


def test_corrupted_and_half_written_records_are_named_and_skipped(store, cases, tmp_path):
    uri, _, offline = store
    paths = [run_offline(offline, cases[f"sp-s{s}-random"]).spooled for s in (0, 1)]
    paths.append(run_offline(offline, cases["sp-s0-crash"]).spooled)
    good, bad_json, bad_file = (tmp_path / "spool" / p.rsplit("/", 1)[1] for p in paths)
    (bad_json / "record.json").write_text('{"uid": "truncated')
    with open(bad_file / "artifacts" / "traceback.txt", "a") as f:
        f.write("tampered")
    half = tmp_path / "spool" / ".20261203-000000-abc.partial"
    half.mkdir()
    result = replay(tmp_path / "spool", uri, offline)
    assert list(result.replayed) == [str(good)]
    text = "\n".join(result.problems)
    assert str(bad_json) in text and "corrupted" in text
    assert str(bad_file) in text and "traceback.txt does not match its SHA-256" in text
    assert str(half) in text and "half-written" in text
    assert bad_json.exists() and bad_file.exists() and half.exists()  # left for a person to look at
    assert [r.info.run_name for r in case_runs(uri)] == ["sp-s0-random"]  # nothing partly loaded


def test_the_store_still_down_leaves_every_record(store, cases, tmp_path):
    uri, _, offline = store
    run_offline(offline, cases["sp-s0-random"])
    result = spool.replay(tmp_path / "spool", offline.uri, parent_metrics_of_runs)
    assert result.unreachable and result.left == 1 and not result.replayed
    assert len(spool.pending(tmp_path / "spool").records) == 1


def test_dibs_bench_sync_replays_only_this_stores_records(store, cases, tmp_path):
    uri, _, offline = store
    run_offline(offline, cases["sp-s0-random"])
    command = [sys.executable, "-m", "harness", "sync", "--spool", str(tmp_path / "spool"), "--mlflow-uri", uri]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 record(s)" in proc.stdout and "are for another store, http://127.0.0.1:" in proc.stdout
    assert PASSWORD not in proc.stdout and not case_runs(uri)
    proc = subprocess.run([*command, "--from-uri", offline.uri], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "replayed 1 spooled run(s)" in proc.stdout, proc.stdout + proc.stderr
    assert len(case_runs(uri)) == 1


def test_unreachable_is_told_from_a_refused_request(tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as down:
        MlflowClient(f"http://127.0.0.1:{free_port()}").get_run("0" * 32)
    assert spool.is_unreachable(down.value)
    with pytest.raises(MlflowException) as refused:
        MlflowClient(sqlite_uri(tmp_path / "m.db")).get_run("0" * 32)  # a store that answers: no such run
    assert not spool.is_unreachable(refused.value)


def test_credentials_are_dropped_from_the_uri():
    assert spool.without_credentials("http://u:p@host:5000/x") == "http://host:5000/x"
    assert spool.without_credentials("sqlite:////a/b.db") == "sqlite:////a/b.db"
    assert spool.without_credentials("postgresql://u:secret@db/mlflow") == "postgresql://db/mlflow"


def test_records_replay_cases_before_sessions_and_in_time_order(tmp_path):
    def record(uid, kind, end):
        return spool.Record(
            uid=uid,
            kind=kind,
            uri="sqlite:////x.db",
            experiment="e",
            session_name="s",
            parent_run_id=None,
            run_id=None,
            run_name=uid,
            status="FINISHED",
            start_time=0,
            end_time=end,
        )

    for r in (record("a", "session", 1), record("b", "case", 3), record("c", "case", 2)):
        spool.write(tmp_path, r)
    assert [r.uid for _, r in spool.pending(tmp_path).records] == ["c", "b", "a"]
    assert np.all([p.name == r.uid for p, r in spool.pending(tmp_path).records])


@pytest.mark.integration
def test_a_later_session_that_reaches_the_store_replays_the_spool_first(store, cases, tmp_path, write_study):
    uri, _, offline = store
    run_offline(offline, cases["sp-s0-random"])
    [(path, record)] = spool.pending(tmp_path / "spool").records
    # as if spooled for this store (a SQLite file is never down here)
    (path / "record.json").write_text(record.model_copy(update={"uri": uri}).model_dump_json())
    later = write_study(tiny_study(name="later", experiment="spooled", seeds=[0]), "later.yaml")
    proc = run_pytest(
        ["--configs", str(later), "--spool", str(tmp_path / "spool")], tmp_path, {"MLFLOW_TRACKING_URI": uri}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"replayed 1 spooled run(s) from {tmp_path / 'spool'}" in proc.stdout
    assert sorted(r.info.run_name for r in case_runs(uri)) == ["later-s0-random", "sp-s0-random"]
    assert not spool.pending(tmp_path / "spool").records


@pytest.mark.integration
def test_a_store_out_of_reach_at_the_start_stops_the_session_before_any_case(write_study, tmp_path):
    path = write_study(tiny_study(name="early", seeds=[0]))
    proc = run_pytest(
        ["--configs", str(path), "--spool", str(tmp_path / "spool")],
        tmp_path,
        {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert proc.returncode == 1
    assert "cannot be reached, so no session was opened and no case ran" in proc.stdout + proc.stderr
    assert "passed" not in proc.stdout and not (tmp_path / "spool").exists()
