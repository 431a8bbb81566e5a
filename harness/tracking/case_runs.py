"""A case's child MLflow run, from creation to a terminal status, and what it holds.

Workers (xdist workers, Slurm array tasks, or the only process) create child runs
(:class:`RunWriter`), tagged ``mlflow.parentRunId`` with their session's parent run. What a run
holds: the case's config flattened into params, its metrics (batched: one ``log_batch`` per run keeps
SQLite contention low), tags that say what ran where (:func:`case_tags`) and the fixed artifact set
of DESIGN.md (:func:`write_case_artifacts`). ``--reuse``: :func:`find_reusable`.

This module writes what it is given: the metrics, the tags that the evaluation derived and the
threshold verdicts arrive complete (``harness.execution`` runs the case and judges it).
"""

from __future__ import annotations

import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

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

from harness.study.loading import Case
from harness.tracking import spool
from harness.tracking import tags as T
from harness.tracking.heartbeat import Heartbeat
from harness.tracking.provenance import git_commit, harness_version, version_tags
from harness.tracking.records import CaseRecord
from harness.tracking.sessions import Session
from harness.tracking.store import retry_locked

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


def write_case_artifacts(directory: Path, case: Case, result) -> None:
    """The fixed artifact set of DESIGN.md, written into ``directory`` (``z`` in ``particles.npz``
    only for a learner with latent particles)."""
    ds, post = result.dataset, result.posterior
    _dump_yaml(directory / "config.yaml", case.config)
    _dump_yaml(directory / "ground_truth.yaml", {"nodes": ds.nodes, "g": ds.g.astype(int).tolist()})
    _dump_yaml(directory / "metrics.yaml", dict(result.metrics))
    _dump_yaml(
        directory / "intervention_details.yaml",
        {
            "interventions": [
                {
                    "targets": [ds.nodes[t] for t in s.targets],
                    "target_indices": s.targets,
                    "values": [s.value] * len(s.targets),
                    "n_samples": int(s.x.shape[0]),
                }
                for s in ds.interventions
            ]
        },
    )
    latents = {} if post.z is None else {"z": post.z}
    np.savez(
        directory / "particles.npz",
        **latents,
        g=post.g,
        log_weights=post.log_weights,
        log_weights_mixture=result.log_weights_mixture,
    )
    if result.exact is not None:
        np.savez(
            directory / "exact_posterior.npz",
            edge_marginals=result.exact.edge_marginals,
            log_normalizer=result.exact.log_normalizer,
            particle_log_posterior=result.exact.log_prob_of(post.g),
        )
    with open(directory / "ground_truth_theta.pkl", "wb") as f:
        pickle.dump(plain_numpy(ds.theta), f)
    with open(directory / "thetas.pkl", "wb") as f:
        pickle.dump({} if post.theta is None else plain_numpy(post.theta), f)  # {}: graphs alone (a marginal model)


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
        T.LEARNER_TAG: case.learner,
        T.STUDY_TAG: case.study,
        "config_path": case.path,
        T.SEED_TAG: str(case.seed),
        T.CASE_ID_TAG: case.id,
        T.CONFIG_HASH_TAG: case.config_hash,
        T.COMPARISON_HASH_TAG: case.comparison_hash,
        "device": device,
        "worker": worker,
        **version_tags(),
        **case.notes,
    }
    commit = git_commit()
    if commit:
        tags[T.GIT_COMMIT_TAG] = commit
        tags["mlflow.source.git.commit"] = commit
    return tags


# ---------------------------------------------------------------------------------------------
# The case's run
# ---------------------------------------------------------------------------------------------


def record_of(case: Case, **fields) -> CaseRecord:
    """A case's record (``fields``: run_id, status, metrics, misses, error, reused)."""
    return CaseRecord(
        case_id=case.id,
        learner=case.learner,
        seed=case.seed,
        study=case.study,
        experiment=case.experiment,
        config_hash=case.config_hash,
        comparison_hash=case.comparison_hash,
        params=flatten_config(case.config),
        **fields,
    )


def find_reusable(session: Session, case: Case):
    """The newest FINISHED run of this case's experiment with the same config hash and harness
    version, or None."""
    runs = T.same_case_runs(
        MlflowClient(session.uri),
        session.parents[case.experiment]["experiment_id"],
        case.config_hash,
        harness_version(),
        "FINISHED",
        limit=1,
    )
    return runs[0] if runs else None


class RunWriter:
    """A new child run of the session for one case, written by this process from start to a
    terminal status (:meth:`create` makes it; a heartbeat keeps it alive until it ends).

    When the store cannot be reached after the client's retries (``spool.is_unreachable``) and the
    session has a spool, the run's whole record goes there instead (``spool_path``), with the run's
    id if it was created before the outage; ``dibs-bench sync`` replays it."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str | None,
        heartbeat: Heartbeat | None,
        session: Session | None = None,
        case: Case | None = None,
        tags: dict[str, str] | None = None,
        start_time: int | None = None,
        unreachable: str | None = None,
    ):
        self.client, self.run_id, self._heartbeat = client, run_id, heartbeat
        self.session, self.case, self.tags = session, case, tags or {}
        self.start_time = start_time or spool.now_ms()
        self.unreachable = unreachable  # the store's last error, once it could not be reached
        self.spool_path: Path | None = None
        self.status = "RUNNING"

    @classmethod
    def create(
        cls, session: Session, case: Case, device: str, worker: str, extra_tags: dict[str, str] | None = None
    ) -> RunWriter:
        client = MlflowClient(session.uri)
        parent = session.parents[case.experiment]
        tags = {T.PARENT_TAG: parent["run_id"], **case_tags(case, device, worker), **(extra_tags or {})}
        writer = cls(client, None, None, session, case, tags)
        try:
            run = retry_locked(
                client.create_run, parent["experiment_id"], run_name=case.id, tags=tags, start_time=writer.start_time
            )
            writer.run_id = run.info.run_id
            writer._heartbeat = Heartbeat(session.uri, [run.info.run_id]).start()
        except Exception as exc:
            writer._went_offline(exc)
        return writer

    def log_result(self, case: Case, result, misses: list[str]) -> None:
        """Params, metrics (with their curves), the evaluation's tags, the threshold verdict and the
        artifacts; then FINISHED."""
        params = flatten_config(case.config)
        now = int(time.time() * 1000)
        # with convergence curves, each metric's history is the curve and its last point the final value
        final_step = int(case.settings.get("steps", 0)) if result.curves else 0
        metrics = [Metric(k, float(v), now, final_step) for k, v in result.metrics.items()]
        metrics += [Metric(f"time.{k}", float(v), now, 0) for k, v in result.timings.items()]
        metrics += [
            Metric(k, float(v), now, step)
            for step, values in result.curves
            if step != final_step
            for k, v in values.items()
        ]
        tags = {T.THRESHOLDS_TAG: "failed" if misses else "passed", **result.tags}
        if misses:
            tags[T.MISSES_TAG] = _truncate("; ".join(misses), 5000)
        with tempfile.TemporaryDirectory() as tmp:
            write_case_artifacts(Path(tmp), case, result)
            self._record("FINISHED", params, metrics, tags, Path(tmp), ARTIFACTS + EXACT_ARTIFACTS)

    def fail(self, reason: str, traceback_text: str, killed: bool) -> None:
        """FAILED (KILLED for an interrupt) with ``traceback.txt`` and the reason as a tag."""
        if self.status != "RUNNING":
            return
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "traceback.txt").write_text(traceback_text)
            self._record(
                "KILLED" if killed else "FAILED",
                {},
                [],
                {T.FAILURE_TAG: _truncate(reason, 5000)},
                Path(tmp),
                ("traceback.txt",),
            )

    def end_unfinished(self, reason: str) -> None:
        """KILLED with ``reason``, if the run is still RUNNING (the case never ran to an end)."""
        if self.status == "RUNNING":
            self._record("KILLED", {}, [], {T.FAILURE_TAG: reason}, None, ())

    def _record(
        self,
        status: str,
        params: dict[str, str],
        metrics: list[Metric],
        tags: dict[str, str],
        artifact_dir: Path | None,
        allowed: tuple[str, ...],
    ) -> None:
        """Log it all and end the run with ``status``; to the spool if the store is unreachable."""
        if self.unreachable is None:
            try:
                self._log(params, metrics, tags, artifact_dir, allowed)
                self._end(status)
                return
            except Exception as exc:
                self._went_offline(exc)
        self._spool(status, params, metrics, tags, artifact_dir, allowed)

    def _log(self, params, metrics, tags, artifact_dir, allowed) -> None:
        params = [Param(k, v) for k, v in params.items()]
        tags = [RunTag(k, v) for k, v in tags.items()]
        retry_locked(
            self.client.log_batch,
            self.run_id,
            params=params[:MAX_PARAMS_TAGS_PER_BATCH],
            metrics=metrics[:MAX_METRICS_PER_BATCH],
            tags=tags,
        )
        for i in range(MAX_PARAMS_TAGS_PER_BATCH, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            retry_locked(self.client.log_batch, self.run_id, params=params[i : i + MAX_PARAMS_TAGS_PER_BATCH])
        for i in range(MAX_METRICS_PER_BATCH, len(metrics), MAX_METRICS_PER_BATCH):
            retry_locked(self.client.log_batch, self.run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
        if artifact_dir is not None:
            log_artifacts_selectively(self.client, self.run_id, artifact_dir, allowed)

    def _went_offline(self, exc: Exception) -> None:
        """The store is out of reach: from now on this run goes to the spool (re-raises anything
        else, or when the session has no spool)."""
        if self.session is None or not self.session.spool or not spool.is_unreachable(exc):
            raise exc
        self.unreachable = str(exc)[:2000]

    def _spool(self, status, params, metrics, tags, artifact_dir, allowed) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        names = sorted(n for n in allowed if artifact_dir is not None and (artifact_dir / n).is_file())
        parent = self.session.parents[self.case.experiment]
        record = spool.Record(
            uid=spool.new_uid(),
            kind="case",
            uri=spool.without_credentials(self.session.uri),
            experiment=self.case.experiment,
            session_name=self.session.name,
            parent_run_id=parent["run_id"],
            run_id=self.run_id,
            run_name=self.case.id,
            status=status,
            start_time=self.start_time,
            end_time=spool.now_ms(),
            tags={**self.tags, **tags},
            params=params,
            metrics=[(m.key, m.value, m.timestamp, m.step) for m in metrics],
            artifacts=dict.fromkeys(names, ""),
            reason=self.unreachable or "",
        )
        self.spool_path = spool.write(Path(self.session.spool), record, artifact_dir)
        self.status = status

    def _end(self, status: str) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        retry_locked(self.client.set_terminated, self.run_id, status)
        self.status = status
