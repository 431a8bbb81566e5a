"""Every case is an MLflow run (see DESIGN.md, "Tracking").

Layout: the controller process creates each experiment and one parent run per experiment and
session (:func:`open_session`) before workers start; workers only create child runs
(:class:`CaseRun`), tagged ``mlflow.parentRunId``. All calls go through an explicit
``MlflowClient`` (no fluent, process-global active run), and writes are batched (one
``log_batch`` per run) to keep SQLite contention low; the remaining "database is locked" errors
that several writers can provoke are retried.
"""

from __future__ import annotations

import functools
import os
import pickle
import platform
import re
import shutil
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass, field
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
from harness.compare import paired_comparisons
from harness.config import Case
from harness.heartbeat import Heartbeat, end_stale_runs
from harness.store import PARENT_TAG, artifact_root, is_local_sqlite, prepare_store, retry_locked

ARTIFACTS = (
    "config.yaml",
    "ground_truth.yaml",
    "ground_truth_theta.pkl",
    "metrics.yaml",
    "intervention_details.yaml",
    "particles.npz",
    "thetas.pkl",
)
TRUNCATION_MARKER = "...[truncated]"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


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
    client: MlflowClient, run_id: str, directory: str | Path, allowed: tuple[str, ...] = ARTIFACTS
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


@functools.cache
def version_tags() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "unknown"

    return {
        "harness_version": harness.__version__,
        "dibs_version": v("dibs-lib"),
        "jax_version": v("jax"),
        "mlflow_version": v("mlflow"),
        "python_version": platform.python_version(),
    }


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(harness.__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


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
# Session (controller) and case runs (workers)
# ---------------------------------------------------------------------------------------------


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
    first (``harness.heartbeat``); their names are in ``session.ended_stale``."""
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
            tags={"harness.role": "session", **version_tags(), **({"git_commit": git_commit()} if git_commit() else {})},
        )
        session.parents[name] = {"experiment_id": exp_id, "run_id": parent.info.run_id}
    session.heartbeat = Heartbeat(uri, [ids["run_id"] for ids in session.parents.values()]).start()
    return session


def experiment_ids(uri: str, names) -> list[str]:
    """The ids of those of these experiments that exist (none is created, nor a missing store)."""
    if is_local_sqlite(uri) and not Path(uri.removeprefix("sqlite:///")).exists():
        return []
    prepare_store(uri)
    client = MlflowClient(uri)
    found = [retry_locked(client.get_experiment_by_name, name) for name in sorted(names)]
    return [exp.experiment_id for exp in found if exp is not None]


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    exp = retry_locked(client.get_experiment_by_name, name)
    exp_id = exp.experiment_id if exp else _create_experiment(client, uri, name)
    if not exp or exp.tags.get(EXPERIMENT_KIND_TAG) != "custom_model_development":
        # MLflow 3's UI opens GenAI views unless told the experiment holds training-style runs
        retry_locked(client.set_experiment_tag, exp_id, EXPERIMENT_KIND_TAG, "custom_model_development")
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


def close_session(session: Session, records: list[dict], status: str = "FINISHED") -> list[dict]:
    """Controller, at the end: aggregates on each parent, no child left RUNNING, parents ended.

    Returns records of the child runs it had to end (their process died mid-case), so that the
    summary and the CSV list them too."""
    if session.heartbeat is not None:
        session.heartbeat.stop()
    client = MlflowClient(session.uri)
    orphans = []
    for experiment, ids in session.parents.items():
        mine = [r for r in records if r.get("experiment") == experiment and r.get("metrics")]
        metrics = aggregate_metrics(mine)
        for paired in paired_comparisons(mine):
            metrics.update({k: v for k, v in paired.as_metrics().items() if np.isfinite(v)})
        if metrics:
            now = int(time.time() * 1000)
            items = [Metric(k, v, now, 0) for k, v in metrics.items()]
            for i in range(0, len(items), 1000):
                retry_locked(client.log_batch, ids["run_id"], metrics=items[i : i + 1000])
        orphans += _end_orphans(client, ids, experiment, "KILLED" if status == "KILLED" else "FAILED")
        if not _children(client, ids):  # nothing of this experiment was selected (-k, -m)
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


def _children(client: MlflowClient, ids: dict, extra_filter: str = "") -> list:
    query = f"tags.`{PARENT_TAG}` = '{ids['run_id']}'" + (f" and {extra_filter}" if extra_filter else "")
    return retry_locked(client.search_runs, [ids["experiment_id"]], filter_string=query, max_results=50000)


def metrics_not_logged(dataset) -> list[str]:
    """Why a metric a case usually logs is missing from this one (one reason per sentence)."""
    from harness.metrics import undefined_areas

    areas = undefined_areas(dataset.g)
    reasons = [areas] if areas else []
    if dataset.theta is None:
        reasons.append("negll_intrv: real data has no interventional test sets (and no ground-truth parameters exist)")
    return reasons


def data_tags(data: dict, dataset) -> dict[str, str]:
    """What the case was scored against: the truth's edge count and acyclicity; for real data the
    variant and the samples used."""
    from harness.datasets import REAL_DATASETS
    from harness.metrics import is_cyclic

    tags = {"truth_edges": str(int(dataset.g.sum())), "truth_acyclic": str(not is_cyclic(dataset.g[None])[0]).lower()}
    if data.get("dataset"):
        real = REAL_DATASETS[data["dataset"]]
        scaling = "standardised with the training split's statistics" if data["standardize"] else "not standardised"
        tags["data_variant"] = f"{real.name}, {data['truth']} graph, {scaling}"
        tags["data_samples"] = (f"{data['n_observations']} training and {data['n_ho_observations']} held-out rows of "
                                f"{real.n_samples} (all conditions pooled)")
    return tags


def aggregate_metrics(records: list[dict]) -> dict[str, float]:
    """``<learner>.<metric>_mean`` / ``_std``, and ``<learner>.n_cases``, over the given case records."""
    by_learner: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for metric, value in r["metrics"].items():
            by_learner.setdefault(r["learner"], {}).setdefault(metric, []).append(value)
    out = {}
    for learner, metrics in by_learner.items():
        for metric, values in metrics.items():
            out[f"{learner}.{metric}_mean"] = float(np.mean(values))
            out[f"{learner}.{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out[f"{learner}.n_cases"] = float(sum(r["learner"] == learner for r in records))
    return out


def _end_orphans(client: MlflowClient, ids: dict, experiment: str, status: str) -> list[dict]:
    """End any child of this session still RUNNING (its worker died or was interrupted)."""
    reason = "the process running this case ended before the case did (killed, out of memory, interrupted)"
    ended = []
    for run in _children(client, ids, "attributes.status = 'RUNNING'"):
        retry_locked(client.set_tag, run.info.run_id, "failure_reason", reason)
        retry_locked(client.set_terminated, run.info.run_id, status)
        tags = run.data.tags
        ended.append({
            "case_id": run.info.run_name, "study": tags.get("config_name"), "experiment": experiment,
            "learner": tags.get("learner"), "seed": int(tags.get("seed", -1)), "config_hash": tags.get("config_hash"),
            "run_id": run.info.run_id,
            "status": status, "metrics": {}, "thresholds": "-", "params": dict(run.data.params), "error": reason,
        })
    return ended


def find_reusable(session: Session, case: Case):
    """The newest FINISHED run of this case's experiment with the same config hash and harness
    version, or None."""
    client = MlflowClient(session.uri)
    query = (
        f"tags.config_hash = '{case.config_hash}' and tags.harness_version = '{harness.__version__}' "
        "and attributes.status = 'FINISHED'"
    )
    runs = retry_locked(
        client.search_runs, [session.parents[case.experiment]["experiment_id"]], filter_string=query,
        order_by=["attributes.start_time DESC"], max_results=1,
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
            from harness.metric_names import METRICS
            from harness.thresholds import threshold_misses

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
        from harness.thresholds import threshold_misses

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
        self.error = f"{type(exc).__name__}: {exc}"
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
