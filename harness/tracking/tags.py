"""MLflow tag names the harness writes and reads, and the queries that use them: one module, so
that a name is spelled once and every search for a session, a case or a task reads the same way.

A session is one parent run per experiment (``harness.role = session``); each case is a child run
of it (``mlflow.parentRunId``) tagged with what ran (:data:`CASE_TAGS` and the versions of
``harness.tracking.provenance``); a run in progress carries a heartbeat.
"""

from __future__ import annotations

from collections import defaultdict

from harness.study.plan import History
from harness.tracking.store import retry_locked

# runs and sessions
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "harness.role"
SESSION_ROLE = "session"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI: training-style runs, not GenAI views
GIT_COMMIT_TAG = "git_commit"
HARNESS_VERSION_TAG = "harness_version"
# a case's run: what ran (harness.tracking.case_runs.case_tags)
CASE_ID_TAG = "case_id"
LEARNER_TAG = "learner"
SEED_TAG = "seed"
STUDY_TAG = "config_name"
CONFIG_HASH_TAG = "config_hash"
COMPARISON_HASH_TAG = "comparison_hash"
# ... and how it ended
FAILURE_TAG = "failure_reason"
THRESHOLDS_TAG = "thresholds"
MISSES_TAG = "threshold_misses"
NOT_LOGGED_TAG = "metrics_not_logged"
# the learner's own diagnostics (Posterior.diagnostics), logged as metrics: read back with the
# registered metrics by --reuse and Slurm (harness.tracking.readback.recorded_metrics)
DIAGNOSTICS_TAG = "harness.diagnostics"
# liveness (harness.tracking.heartbeat)
BEAT_TAG = "harness.heartbeat"
INTERVAL_TAG = "harness.heartbeat_interval_s"
# Slurm array tasks (harness.execution.slurm)
TASK_TAG = "slurm_task"
RESTARTS_TAG = "slurm_restarts"  # how often Slurm requeued the task before this attempt

MAX_RESULTS = 50000


def diagnostics_tag(diagnostics: dict) -> dict[str, str]:
    """The tag that names a case's diagnostics (none for a learner without)."""
    return {DIAGNOSTICS_TAG: ",".join(sorted(diagnostics))} if diagnostics else {}


def diagnostic_names(run) -> set[str]:
    return set(filter(None, run.data.tags.get(DIAGNOSTICS_TAG, "").split(",")))


def _and(*clauses: str) -> str:
    return " and ".join(c for c in clauses if c)


def status_is(status: str) -> str:
    return f"attributes.status = '{status}'"


def child_of(parent_run_id: str) -> str:
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}'"


def runs_of(
    client, experiment_id: str, parent_run_id: str | None = None, status: str | None = None, extra: str = ""
) -> list:
    """The experiment's runs: of one session's parent run (if given), of ``status`` (if given),
    matching ``extra`` (an MLflow filter; one with ``or`` is bracketed)."""
    if extra and " or " in extra.lower():
        extra = f"({extra})"
    query = _and(child_of(parent_run_id) if parent_run_id else "", status_is(status) if status else "", extra)
    return retry_locked(client.search_runs, [experiment_id], filter_string=query, max_results=MAX_RESULTS)


def children(client, experiment_id: str, parent_run_id: str, status: str | None = None) -> list:
    """The case runs of one session's parent run (of ``status``, if given)."""
    return runs_of(client, experiment_id, parent_run_id, status)


def runs_with_status(
    client, experiment_ids: list[str], status: str, order_newest_first: bool = False, limit: int = MAX_RESULTS
) -> list:
    order = ["attributes.start_time DESC"] if order_newest_first else None
    return retry_locked(
        client.search_runs, experiment_ids, filter_string=status_is(status), order_by=order, max_results=limit
    )


def sessions(client, experiment_id: str, finished_only: bool = False, limit: int = MAX_RESULTS) -> list:
    """The experiment's session parent runs, newest first."""
    query = _and(f"tags.`{ROLE_TAG}` = '{SESSION_ROLE}'", status_is("FINISHED") if finished_only else "")
    return retry_locked(
        client.search_runs,
        [experiment_id],
        filter_string=query,
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )


def is_session(run) -> bool:
    return run.data.tags.get(ROLE_TAG) == SESSION_ROLE


def latest_session(client, experiment: str, finished_only: bool = False, exclude: set[str] = frozenset()):
    """The parent run of the experiment's most recent session (FINISHED only, if asked; not one of
    ``exclude``), or None."""
    exp = retry_locked(client.get_experiment_by_name, experiment)
    if exp is None:
        return None
    return next(
        (r for r in sessions(client, exp.experiment_id, finished_only, limit=50) if r.info.run_id not in exclude), None
    )


def same_case(config_hash: str, harness_version: str, status: str) -> str:
    """Runs of ``status`` of one config hash and harness version (what ``--reuse`` matches)."""
    return _and(
        f"tags.{CONFIG_HASH_TAG} = '{config_hash}'",
        f"tags.{HARNESS_VERSION_TAG} = '{harness_version}'",
        status_is(status),
    )


def same_case_runs(
    client, experiment_id: str, config_hash: str, harness_version: str, status: str, limit: int = MAX_RESULTS
) -> list:
    """Newest first."""
    return retry_locked(
        client.search_runs,
        [experiment_id],
        filter_string=same_case(config_hash, harness_version, status),
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )


def task_runs(client, experiment_id: str, task: str) -> list:
    """The runs recorded by one Slurm array task (``<array>_<index>``)."""
    return retry_locked(client.search_runs, [experiment_id], filter_string=f"tags.{TASK_TAG} = '{task}'")


def earlier_runs(client, experiment_ids: list[str], harness_version: str, limit: int = 5000) -> History:
    """Earlier FINISHED case runs in these experiments: their durations by config hash, and the
    hashes with a run of this harness version (what ``--reuse`` takes instead of running)."""
    history = History(defaultdict(list))
    for run in runs_with_status(client, experiment_ids, "FINISHED", order_newest_first=True, limit=limit):
        digest = run.data.tags.get(CONFIG_HASH_TAG)
        if digest and run.info.end_time and run.info.start_time:
            history.durations[digest].append((run.info.end_time - run.info.start_time) / 1000)
        if digest and run.data.tags.get(HARNESS_VERSION_TAG) == harness_version:
            history.reusable.add(digest)
    return history
