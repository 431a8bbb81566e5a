"""Case records read back from runs in the store: the metrics a run recorded (the registered ones
and the learner's own diagnostics, named in its tag) and a case's record made from its run (for
runs this process did not write: a dead worker's, or those a replay of the spool completed)."""

from __future__ import annotations

from harness.evaluation.registry import METRICS
from harness.tracking import tags as T
from harness.tracking.records import CaseRecord


def record_of_run(run, experiment: str, **changes) -> CaseRecord:
    """A case's record read back from its run in the store (``changes``: fields to set instead)."""
    tags = run.data.tags
    fields = dict(
        case_id=run.info.run_name,
        learner=tags.get(T.LEARNER_TAG, "?"),
        seed=int(tags.get(T.SEED_TAG, -1)),
        study=tags.get(T.STUDY_TAG, ""),
        experiment=experiment,
        config_hash=tags.get(T.CONFIG_HASH_TAG),
        comparison_hash=tags.get(T.COMPARISON_HASH_TAG),
        run_id=run.info.run_id,
        status=run.info.status,
        metrics=recorded_metrics(run) if run.info.status == "FINISHED" else {},
        params=dict(run.data.params),
        error=tags.get(T.FAILURE_TAG),
    )
    return CaseRecord(**{**fields, **changes})


def recorded_metrics(run) -> dict[str, float]:
    """The metrics a finished run logged: the registered ones and the learner's own diagnostics
    (named in its ``harness.diagnostics`` tag); timings and curves' extra keys left out."""
    kept = set(METRICS) | T.diagnostic_names(run)
    return {k: v for k, v in run.data.metrics.items() if k in kept}
