"""The tracking code by its earlier name: every case is an MLflow run (DESIGN.md, "Tracking").

Split by role: ``harness.store`` (URI, store creation, retries), ``harness.sessions`` (the
session's parent runs), ``harness.case_runs`` (a case's child run and what it holds). The names
below stay importable from here for code written before the split.
"""

from harness.case_runs import (  # noqa: F401
    ARTIFACTS,
    TRUNCATION_MARKER,
    CaseRun,
    case_record,
    case_tags,
    data_tags,
    find_reusable,
    flatten_config,
    log_artifacts_selectively,
    log_config_as_params,
    metrics_not_logged,
    plain_numpy,
    write_case_artifacts,
)
from harness.provenance import git_commit, version_tags  # noqa: F401
from harness.sessions import (  # noqa: F401
    Session,
    aggregate_metrics,
    close_session,
    experiment_ids,
    open_session,
    tag_session,
)
