"""MLflow tag names and the queries that use them."""

from __future__ import annotations

from collections import defaultdict

import harness
from harness.study.plan import History
from harness.tracking.store import retry_locked


def earlier_runs(uri: str, experiment_ids: list[str], limit: int = 5000) -> History:
    """Earlier FINISHED case runs in these experiments: their durations by config hash, and the
    hashes with a run of this harness version (what ``--reuse`` takes instead of running)."""
    history = History(defaultdict(list))
    if not experiment_ids:
        return history
    from mlflow.tracking import MlflowClient

    runs = retry_locked(MlflowClient(uri).search_runs, experiment_ids, filter_string="attributes.status = 'FINISHED'",
                        order_by=["attributes.start_time DESC"], max_results=limit)
    for run in runs:
        digest = run.data.tags.get("config_hash")
        if digest and run.info.end_time and run.info.start_time:
            history.durations[digest].append((run.info.end_time - run.info.start_time) / 1000)
        if digest and run.data.tags.get("harness_version") == harness.__version__:
            history.reusable.add(digest)
    return history
