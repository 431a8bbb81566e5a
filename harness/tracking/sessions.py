"""A session: the controller's parent runs, one per experiment, and their end.

The controller process creates each experiment and one parent run per experiment and session
(:func:`open_session`) before any case runs; case runs (``harness.tracking.case_runs``) are its
children. At the end (:func:`close_session`) the parents get the session's metrics (aggregates and
paired comparisons, computed by ``harness.analysis.summary``), children left RUNNING by a dead
worker are ended, and the parents are terminated. All calls go
through an explicit ``MlflowClient`` (no fluent, process-global active run).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from harness.tracking import tags as T
from harness.tracking.heartbeat import Heartbeat, end_stale_runs
from harness.tracking.provenance import git_commit, version_tags
from harness.tracking.records import CaseRecord
from harness.tracking.store import artifact_root, db_path, is_local_sqlite, prepare_store, retry_locked


@dataclass
class Session:
    """What the controller hands to workers: the store and each experiment's parent run."""

    uri: str
    parents: dict[str, dict[str, str]] = field(default_factory=dict)  # experiment -> ids
    # controller only: the parents' heartbeat, and runs of dead sessions this one ended
    heartbeat: Heartbeat | None = field(default=None, repr=False, compare=False)
    ended_stale: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict:
        return {"uri": self.uri, "parents": self.parents}

    @classmethod
    def from_dict(cls, d: dict) -> Session:
        return cls(uri=d["uri"], parents=d["parents"])


def open_session(uri: str, experiments: list[str], session_name: str) -> Session:
    """Create (or find) each experiment and one parent run for it, kept alive by a heartbeat:
    controller only. Runs of these experiments left RUNNING by dead processes are ended FAILED
    first (``harness.tracking.heartbeat``); their names are in ``session.ended_stale``."""
    prepare_store(uri)
    client = MlflowClient(uri)
    session = Session(uri=uri)
    exp_ids = {name: _experiment_id(client, uri, name) for name in sorted(set(experiments))}
    stale = end_stale_runs(client, list(exp_ids.values()), ended_by=f"session {session_name}")
    session.ended_stale = [f"{r.info.run_name} ({r.info.run_id})" for r in stale]
    for name, exp_id in exp_ids.items():
        parent = retry_locked(
            client.create_run,
            exp_id,
            run_name=session_name,
            tags={T.ROLE_TAG: T.SESSION_ROLE, **version_tags(),
                  **({T.GIT_COMMIT_TAG: git_commit()} if git_commit() else {})},
        )
        session.parents[name] = {"experiment_id": exp_id, "run_id": parent.info.run_id}
    session.heartbeat = Heartbeat(uri, [ids["run_id"] for ids in session.parents.values()]).start()
    return session


def experiment_ids(uri: str, names) -> list[str]:
    """The ids of those of these experiments that exist (none is created, nor a missing store)."""
    if is_local_sqlite(uri) and not db_path(uri).exists():
        return []
    prepare_store(uri)
    client = MlflowClient(uri)
    found = [retry_locked(client.get_experiment_by_name, name) for name in sorted(names)]
    return [exp.experiment_id for exp in found if exp is not None]


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    exp = retry_locked(client.get_experiment_by_name, name)
    exp_id = exp.experiment_id if exp else _create_experiment(client, uri, name)
    if not exp or exp.tags.get(T.EXPERIMENT_KIND_TAG) != "custom_model_development":
        # MLflow 3's UI opens GenAI views unless told the experiment holds training-style runs
        retry_locked(client.set_experiment_tag, exp_id, T.EXPERIMENT_KIND_TAG, "custom_model_development")
    return exp_id


def _create_experiment(client: MlflowClient, uri: str, name: str) -> str:
    root = artifact_root(uri)
    location = f"{root}/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}" if root else None
    try:
        return retry_locked(client.create_experiment, name, artifact_location=location)
    except Exception:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another session
        if exp is None:
            raise
        return exp.experiment_id


def close_session(session: Session, parent_metrics: dict[str, dict[str, float]],
                  status: str = "FINISHED") -> list[CaseRecord]:
    """Controller, at the end: ``parent_metrics`` (experiment -> metrics) on each parent, no child
    left RUNNING, parents ended.

    Returns records of the child runs it had to end (their process died mid-case), so that the
    summary and the CSV list them too."""
    if session.heartbeat is not None:
        session.heartbeat.stop()
    client = MlflowClient(session.uri)
    orphans = []
    for experiment, ids in session.parents.items():
        metrics = parent_metrics.get(experiment, {})
        if metrics:
            now = int(time.time() * 1000)
            items = [Metric(k, v, now, 0) for k, v in metrics.items()]
            for i in range(0, len(items), 1000):
                retry_locked(client.log_batch, ids["run_id"], metrics=items[i : i + 1000])
        orphans += _end_orphans(client, ids, experiment, "KILLED" if status == "KILLED" else "FAILED")
        if not T.children(client, ids["experiment_id"], ids["run_id"]):  # nothing of it was selected (-k, -m)
            retry_locked(client.delete_run, ids["run_id"])
            continue
        retry_locked(client.set_terminated, ids["run_id"], status)
    return orphans


def tag_session(session: Session, tags: dict[str, str]) -> None:
    """Set tags on each parent run of the session that still exists."""
    client = MlflowClient(session.uri)
    for ids in session.parents.values():
        if retry_locked(client.get_run, ids["run_id"]).info.lifecycle_stage == "active":
            for key, value in tags.items():
                retry_locked(client.set_tag, ids["run_id"], f"harness.{key}", value)


def _end_orphans(client: MlflowClient, ids: dict, experiment: str, status: str) -> list[CaseRecord]:
    """End any child of this session still RUNNING (its worker died or was interrupted)."""
    reason = "the process running this case ended before the case did (killed, out of memory, interrupted)"
    ended = []
    for run in T.children(client, ids["experiment_id"], ids["run_id"], status="RUNNING"):
        retry_locked(client.set_tag, run.info.run_id, T.FAILURE_TAG, reason)
        retry_locked(client.set_terminated, run.info.run_id, status)
        tags = run.data.tags
        ended.append(CaseRecord(
            case_id=run.info.run_name, learner=tags.get(T.LEARNER_TAG, "?"), seed=int(tags.get(T.SEED_TAG, -1)),
            study=tags.get(T.STUDY_TAG, ""), experiment=experiment, config_hash=tags.get(T.CONFIG_HASH_TAG),
            comparison_hash=tags.get(T.COMPARISON_HASH_TAG), run_id=run.info.run_id, status=status,
            params=dict(run.data.params), error=reason,
        ))
    return ended
