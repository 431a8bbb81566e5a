"""A session: the controller's parent runs, one per experiment, and their end.

The controller process creates each experiment and one parent run per experiment and session
(:func:`open_session`) before any case runs; case runs (``harness.tracking.case_runs``) are its
children. At the end (:func:`close_session`) the parents get the session's metrics (aggregates and
paired comparisons, computed by ``harness.analysis.summary``), children left RUNNING by a dead
worker are ended, and the parents are terminated. All calls go
through an explicit ``MlflowClient`` (no fluent, process-global active run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from harness.tracking import tags as T
from harness.tracking.experiments import experiment_id_of
from harness.tracking.heartbeat import Heartbeat, end_stale_runs
from harness.tracking.provenance import git_commit, version_tags
from harness.tracking.readback import record_of_run
from harness.tracking.records import CaseRecord
from harness.tracking.store import db_path, is_local_sqlite, prepare_store, retry_locked


@dataclass
class Session:
    """What the controller hands to workers: the store and each experiment's parent run."""

    uri: str
    parents: dict[str, dict[str, str]] = field(default_factory=dict)  # experiment -> ids
    name: str = ""  # the parent runs' name (session-<date>-<time>)
    spool: str | None = None  # where runs go while the store is unreachable (harness.tracking.spool)
    # controller only: the parents' heartbeat, and runs of dead sessions this one ended
    heartbeat: Heartbeat | None = field(default=None, repr=False, compare=False)
    ended_stale: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict:
        return {"uri": self.uri, "parents": self.parents, "name": self.name, "spool": self.spool}

    @classmethod
    def from_dict(cls, d: dict) -> Session:
        return cls(uri=d["uri"], parents=d["parents"], name=d.get("name", ""), spool=d.get("spool"))


def open_session(uri: str, experiments: list[str], session_name: str, spool: str | None = None) -> Session:
    """Create (or find) each experiment and one parent run for it, kept alive by a heartbeat:
    controller only. Runs of these experiments left RUNNING by dead processes are ended FAILED
    first (``harness.tracking.heartbeat``); their names are in ``session.ended_stale``."""
    prepare_store(uri)
    client = MlflowClient(uri)
    session = Session(uri=uri, name=session_name, spool=spool)
    exp_ids = {name: experiment_id_of(client, uri, name) for name in sorted(set(experiments))}
    stale = end_stale_runs(client, list(exp_ids.values()), ended_by=f"session {session_name}")
    session.ended_stale = [f"{r.info.run_name} ({r.info.run_id})" for r in stale]
    for name, exp_id in exp_ids.items():
        parent = retry_locked(
            client.create_run,
            exp_id,
            run_name=session_name,
            tags={
                T.ROLE_TAG: T.SESSION_ROLE,
                **version_tags(),
                **({T.GIT_COMMIT_TAG: git_commit()} if git_commit() else {}),
            },
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


def close_session(
    session: Session,
    parent_metrics: dict[str, dict[str, float]],
    status: str = "FINISHED",
    spooled: list[CaseRecord] = (),
) -> list[CaseRecord]:
    """Controller, at the end: ``parent_metrics`` (experiment -> metrics) on each parent, no child
    left RUNNING, parents ended.

    ``spooled``: cases whose records wait in the spool; a run of theirs created before the outage
    (still RUNNING in the store) is left for the replay, which ends it, and their parent is kept. A parent whose store cannot be
    reached is spooled as a *session* record (``harness.tracking.spool``) when the session has a
    spool. Returns records of the child runs it had to end (their process died mid-case), so that
    the summary and the CSV list them too."""
    from harness.tracking import spool

    if session.heartbeat is not None:
        session.heartbeat.stop()
    client = MlflowClient(session.uri)
    orphans = []
    for experiment, ids in session.parents.items():
        try:
            mine = [r for r in spooled if r.experiment == experiment]
            orphans += _close_parent(client, experiment, ids, parent_metrics.get(experiment, {}), status, mine)
        except Exception as exc:
            if not (session.spool and spool.is_unreachable(exc)):
                raise
            spool.write(
                Path(session.spool),
                spool.Record(
                    uid=spool.new_uid(),
                    kind="session",
                    uri=spool.without_credentials(session.uri),
                    experiment=experiment,
                    session_name=session.name,
                    parent_run_id=ids["run_id"],
                    run_id=ids["run_id"],
                    run_name=session.name,
                    status=status,
                    start_time=spool.now_ms(),
                    end_time=spool.now_ms(),
                    reason=str(exc)[:2000],
                ),
            )
    return orphans


def _close_parent(
    client: MlflowClient, experiment: str, ids: dict, metrics: dict[str, float], status: str, spooled: list[CaseRecord]
) -> list[CaseRecord]:
    if metrics:
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            retry_locked(client.log_batch, ids["run_id"], metrics=items[i : i + 1000])
    waiting = {r.run_id for r in spooled if r.run_id}
    orphans = _end_orphans(client, ids, experiment, "KILLED" if status == "KILLED" else "FAILED", waiting)
    if not T.children(client, ids["experiment_id"], ids["run_id"]) and not spooled:
        retry_locked(client.delete_run, ids["run_id"])  # nothing of it was selected (-k, -m)
    else:
        retry_locked(client.set_terminated, ids["run_id"], status)
    return orphans


def tag_session(session: Session, tags: dict[str, str]) -> None:
    """Set tags on each parent run of the session that still exists."""
    client = MlflowClient(session.uri)
    for ids in session.parents.values():
        if retry_locked(client.get_run, ids["run_id"]).info.lifecycle_stage == "active":
            for key, value in tags.items():
                retry_locked(client.set_tag, ids["run_id"], f"harness.{key}", value)


def _end_orphans(
    client: MlflowClient, ids: dict, experiment: str, status: str, spooled_runs: set[str] = frozenset()
) -> list[CaseRecord]:
    """End any child of this session still RUNNING (its worker died or was interrupted), but those
    whose record waits in the spool."""
    reason = "the process running this case ended before the case did (killed, out of memory, interrupted)"
    ended = []
    for run in T.children(client, ids["experiment_id"], ids["run_id"], status="RUNNING"):
        if run.info.run_id in spooled_runs:
            continue
        retry_locked(client.set_tag, run.info.run_id, T.FAILURE_TAG, reason)
        retry_locked(client.set_terminated, run.info.run_id, status)
        ended.append(record_of_run(run, experiment, status=status, error=reason, metrics={}))
    return ended
