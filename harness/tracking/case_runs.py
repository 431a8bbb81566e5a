"""A case's child MLflow run, from creation to a terminal status, and what it holds.

Workers (xdist workers, Slurm array tasks, or the only process) create child runs
(:class:`CaseRun`), tagged ``mlflow.parentRunId`` with their session's parent run. What a run holds:
the case's config flattened into params, its metrics (batched: one ``log_batch`` per run keeps
SQLite contention low), tags that say what ran where (:func:`case_tags`) and the fixed artifact set
of DESIGN.md (:func:`write_case_artifacts`). ``--reuse``: :func:`find_reusable`.
"""

from __future__ import annotations

import pickle
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

import harness
from harness.execution import interrupts
from harness.study.loading import Case
from harness.tracking.heartbeat import Heartbeat
from harness.tracking.provenance import git_commit, version_tags
from harness.tracking.sessions import Session
from harness.tracking.store import PARENT_TAG, retry_locked

ARTIFACTS = (
    "config.yaml",
    "ground_truth.yaml",
    "ground_truth_theta.pkl",
    "metrics.yaml",
    "intervention_details.yaml",
    "particles.npz",
    "thetas.pkl",
)
EXACT_ARTIFACTS = ("exact_posterior.npz",)  # besides ARTIFACTS, in studies with data.exact_posterior
TRUNCATION_MARKER = "...[truncated]"


# ---------------------------------------------------------------------------------------------
# Params: the seed-compatible helpers
# ---------------------------------------------------------------------------------------------

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


def flatten_config(config: Any, parent_key: str = "", sep: str = ".") -> dict[str, str]:
    """Flatten a nested config into MLflow params.

    Dotted keys for nested mappings; lists as comma-separated strings (nested lists in brackets,
    mappings inside lists as YAML flow text); ``None`` as ``"None"``; characters MLflow does not
    allow in keys replaced by ``_``; keys and values over MLflow's limits truncated with a
    visible ``...[truncated]`` marker, never an error.
    """
    out: dict[str, str] = {}
    if isinstance(config, dict):
        if not config and parent_key:
            out[_param_key(parent_key)] = "{}"
        for key, value in config.items():
            child = f"{parent_key}{sep}{key}" if parent_key else str(key)
            out.update(flatten_config(value, child, sep))
        return out
    out[_param_key(parent_key)] = _truncate(_param_text(config), MAX_PARAM_VAL_LENGTH)
    return out


def _param_text(value: Any, nested: bool = False) -> str:
    if isinstance(value, (list, tuple)):
        text = ",".join(_param_text(v, nested=True) for v in value)
        return f"[{text}]" if nested else text
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return str(value)


def _param_key(key: str) -> str:
    return _truncate(_BAD_KEY_CHARS.sub("_", key), MAX_ENTITY_KEY_LENGTH)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def log_config_as_params(client: MlflowClient, run_id: str, config: dict) -> dict[str, str]:
    """Log ``flatten_config(config)`` as the run's params (batched); returns what was logged."""
    params = flatten_config(config)
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        retry_locked(client.log_batch, run_id, params=items[i : i + MAX_PARAMS_TAGS_PER_BATCH])
    return params


def log_artifacts_selectively(
    client: MlflowClient, run_id: str, directory: str | Path, allowed: tuple[str, ...] = ARTIFACTS + EXACT_ARTIFACTS
) -> list[str]:
    """Log only the files of ``directory`` whose names are in ``allowed`` (never plots or
    anything else that happens to be there); returns the names logged."""
    directory = Path(directory)
    logged = []
    with tempfile.TemporaryDirectory() as staging:
        for name in allowed:
            if (directory / name).is_file():
                shutil.copy2(directory / name, Path(staging) / name)
                logged.append(name)
        if logged:
            retry_locked(client.log_artifacts, run_id, staging)
    return logged


# ---------------------------------------------------------------------------------------------
# Artifacts of a case
# ---------------------------------------------------------------------------------------------


def write_case_artifacts(directory: Path, case: Case, result, metrics: dict) -> None:
    """The fixed artifact set of DESIGN.md, written into ``directory``."""
    ds, post = result.dataset, result.posterior
    _dump_yaml(directory / "config.yaml", case.config)
    _dump_yaml(directory / "ground_truth.yaml", {"nodes": ds.nodes, "g": ds.g.astype(int).tolist()})
    _dump_yaml(directory / "metrics.yaml", metrics)
    _dump_yaml(
        directory / "intervention_details.yaml",
        {
            "interventions": [
                {"targets": [ds.nodes[t] for t in s.targets], "target_indices": s.targets,
                 "values": [s.value] * len(s.targets), "n_samples": int(s.x.shape[0])}
                for s in ds.interventions
            ]
        },
    )
    np.savez(directory / "particles.npz", z=post.z, g=post.g, log_weights=post.log_weights,
             log_weights_mixture=post.log_weights_mixture)
    if result.exact is not None:
        np.savez(directory / "exact_posterior.npz", edge_marginals=result.exact.edge_marginals,
                 log_normalizer=result.exact.log_normalizer,
                 particle_log_posterior=result.exact.log_prob_of(post.g))
    with open(directory / "ground_truth_theta.pkl", "wb") as f:
        pickle.dump(plain_numpy(ds.theta), f)
    with open(directory / "thetas.pkl", "wb") as f:
        pickle.dump(plain_numpy(post.theta), f)


def plain_numpy(tree: Any) -> Any:
    """A pytree as plain Python containers of numpy arrays (no JAX types in the pickle)."""
    if isinstance(tree, dict):
        return {k: plain_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [plain_numpy(v) for v in tree]
        return tuple(items) if isinstance(tree, tuple) else items
    return np.asarray(tree)


def _dump_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------


def case_tags(case: Case, device: str, worker: str) -> dict[str, str]:
    tags = {
        "learner": case.learner,
        "config_name": case.study,
        "config_path": case.path,
        "seed": str(case.seed),
        "case_id": case.id,
        "config_hash": case.config_hash,
        "comparison_hash": case.comparison_hash,
        "device": device,
        "worker": worker,
        **version_tags(),
        **case.notes,
    }
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    return tags


# ---------------------------------------------------------------------------------------------
# The case's run
# ---------------------------------------------------------------------------------------------


def metrics_not_logged(dataset) -> list[str]:
    """Why a metric a case usually logs is missing from this one (one reason per sentence)."""
    from harness.evaluation.metrics import undefined_areas

    areas = undefined_areas(dataset.g)
    reasons = [areas] if areas else []
    if dataset.theta is None:
        reasons.append("negll_intrv: real data has no interventional test sets (and no ground-truth parameters exist)")
    if not len(dataset.x_ho):
        reasons.append("negll_obs: no held-out rows (n_ho_observations: 0; every row is training data)")
    return reasons


def data_tags(data: dict, dataset) -> dict[str, str]:
    """What the case was scored against: the truth's edge count and acyclicity; for real data the
    variant and the samples used."""
    from harness.data.real import REAL_DATASETS
    from harness.models.graphs import is_cyclic

    tags = {"truth_edges": str(int(dataset.g.sum())), "truth_acyclic": str(not is_cyclic(dataset.g[None])[0]).lower()}
    if data.get("dataset"):
        real = REAL_DATASETS[data["dataset"]]
        scaling = "standardised with the training split's statistics" if data["standardize"] else "not standardised"
        tags["data_variant"] = f"{real.name}, {data['truth']} graph, {scaling}"
        tags["data_samples"] = (f"{data['n_observations']} training and {data['n_ho_observations']} held-out rows of "
                                f"{real.n_samples} (all conditions pooled)")
    return tags



def same_case_filter(case: Case, status: str) -> str:
    """Search filter for runs in ``status`` of this case's config hash and this harness version."""
    return (f"tags.config_hash = '{case.config_hash}' and tags.harness_version = '{harness.__version__}' "
            f"and attributes.status = '{status}'")


def find_reusable(session: Session, case: Case):
    """The newest FINISHED run of this case's experiment with the same config hash and harness
    version, or None."""
    client = MlflowClient(session.uri)
    runs = retry_locked(
        client.search_runs, [session.parents[case.experiment]["experiment_id"]],
        filter_string=same_case_filter(case, "FINISHED"), order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs else None


class CaseRun:
    """One case's child run, from start to a terminal status.

    With ``reuse``, a FINISHED run of the same config hash and harness version stands for the
    case: no new run is made, and its recorded metrics are the result (thresholds are checked on
    them again)."""

    def __init__(self, session: Session, case: Case, device: str, worker: str, reuse: bool = False,
                 extra_tags: dict[str, str] | None = None):
        self.case = case
        self.client = MlflowClient(session.uri)
        parent = session.parents[case.experiment]
        self.experiment_id = parent["experiment_id"]
        self.metrics: dict[str, float] = {}
        self.misses: list[str] = []
        self.error: str | None = None
        self.run_options: dict[str, Any] = {}  # keyword arguments for ``run`` (progress, default timeout)
        previous = find_reusable(session, case) if reuse else None
        self.reused = previous is not None
        if previous is not None:
            from harness.evaluation.registry import METRICS
            from harness.analysis.thresholds import threshold_misses

            self.run_id = previous.info.run_id
            self.status = "FINISHED"
            self.metrics = {k: v for k, v in previous.data.metrics.items() if k in METRICS}
            self.misses = threshold_misses(case.id, case.thresholds, self.metrics)
            return
        tags = {PARENT_TAG: parent["run_id"], **case_tags(case, device, worker), **(extra_tags or {})}
        run = retry_locked(self.client.create_run, parent["experiment_id"], run_name=case.id, tags=tags)
        self.run_id = run.info.run_id
        self.status = "RUNNING"
        self._heartbeat = Heartbeat(session.uri, [self.run_id]).start()

    def execute(self, run: Callable[..., Any]):
        """Run the case with ``run(case, **run_options)`` and log everything; on an exception mark
        the run FAILED (KILLED for Ctrl-C) with ``traceback.txt`` and re-raise. A reused case does
        not run."""
        if self.reused:
            return None
        try:
            result = run(self.case, **self.run_options)
            self.log_result(result)
        except BaseException as exc:
            self.fail(exc)
            raise
        return result

    def log_result(self, result) -> None:
        from harness.analysis.thresholds import threshold_misses

        self.metrics = dict(result.metrics)
        self.misses = threshold_misses(self.case.id, self.case.thresholds, self.metrics)
        params = [Param(k, v) for k, v in flatten_config(self.case.config).items()]
        now = int(time.time() * 1000)
        # with convergence curves, each metric's history is the curve and its last point the final value
        final_step = int(self.case.settings.get("steps", 0)) if result.curves else 0
        metrics = [Metric(k, float(v), now, final_step) for k, v in self.metrics.items()]
        metrics += [Metric(f"time.{k}", float(v), now, 0) for k, v in result.timings.items()]
        metrics += [
            Metric(k, float(v), now, step) for step, values in result.curves if step != final_step for k, v in values.items()
        ]
        tags = [RunTag("thresholds", "failed" if self.misses else "passed")]
        not_logged = metrics_not_logged(result.dataset)
        if not_logged:
            tags.append(RunTag("metrics_not_logged", "; ".join(not_logged)))
        tags += [RunTag(k, v) for k, v in data_tags(self.case.config["data"], result.dataset).items()]
        if self.misses:
            tags.append(RunTag("threshold_misses", _truncate("; ".join(self.misses), 5000)))
        retry_locked(self.client.log_batch, self.run_id, params=params[:MAX_PARAMS_TAGS_PER_BATCH],
                     metrics=metrics[:MAX_METRICS_PER_BATCH], tags=tags)
        for i in range(MAX_PARAMS_TAGS_PER_BATCH, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            retry_locked(self.client.log_batch, self.run_id, params=params[i : i + MAX_PARAMS_TAGS_PER_BATCH])
        for i in range(MAX_METRICS_PER_BATCH, len(metrics), MAX_METRICS_PER_BATCH):
            retry_locked(self.client.log_batch, self.run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
        with tempfile.TemporaryDirectory() as tmp:
            write_case_artifacts(Path(tmp), self.case, result, self.metrics)
            log_artifacts_selectively(self.client, self.run_id, tmp)
        self._terminate("FINISHED")

    def fail(self, exc: BaseException) -> None:
        if self.status != "RUNNING":
            return
        self.error = interrupts.describe(exc)
        try:
            retry_locked(self.client.log_text, self.run_id, "".join(traceback.format_exception(exc)), "traceback.txt")
            retry_locked(self.client.set_tag, self.run_id, "failure_reason", _truncate(self.error, 5000))
        finally:
            self._terminate("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")

    def close(self) -> None:
        """Make sure the run is not left RUNNING (the case never ran to an end)."""
        if self.status == "RUNNING":
            self.error = self.error or "the case ended before its run was completed"
            retry_locked(self.client.set_tag, self.run_id, "failure_reason", self.error)
            self._terminate("KILLED")

    def _terminate(self, status: str) -> None:
        self._heartbeat.stop()
        retry_locked(self.client.set_terminated, self.run_id, status)
        self.status = status

    def record(self) -> dict:
        """What the controller needs for the summary, the CSV and the parent's aggregates."""
        return case_record(self.case, self.run_id, self.status, self.metrics, self.misses, self.error, self.reused)


def case_record(case: Case, run_id: str | None, status: str, metrics: dict, misses: list[str],
                error: str | None, reused: bool = False) -> dict:
    """One case's record for the controller (summary, CSV, parent aggregates), however it ran."""
    return {
        "case_id": case.id,
        "study": case.study,
        "experiment": case.experiment,
        "learner": case.learner,
        "seed": case.seed,
        "config_hash": case.config_hash,
        "comparison_hash": case.comparison_hash,
        "run_id": run_id,
        "status": status,
        "metrics": metrics,
        "thresholds": "failed" if misses else ("passed" if status == "FINISHED" else "-"),
        "params": flatten_config(case.config),
        "error": error,
        "reused": reused,
    }
