"""The Slurm executor: a session's cases as one Slurm job array, through ``submitit``.

The controller (the pytest process, ``-n 0``) opens the session (one parent run per experiment),
then :class:`SlurmExecutor` sends the selected cases as one job array. Each array task (:func:`run_task`)
runs one case on the resources Slurm gave it and records its own child run in the tracking
server, so nothing is lost if the submitting session dies. The pytest case waits for its task
(:class:`SlurmCaseRun`), reads the run back and checks thresholds.

- ``--slurm KEY=VALUE`` (values are YAML): submitit's generic keys (``timeout_min``,
  ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``nodes``, ``tasks_per_node``) as they are, any
  other of its Slurm keys (``partition``, ``array_parallelism``, ``setup``, ``account``, ...)
  likewise; an unknown key is refused before anything is submitted.
- At its time limit submitit's signal handler ends the case: the run says FAILED, "Slurm's time
  limit ...". A task that Slurm ends without a result (cancellation, node failure, a kill before
  the handler ran) leaves its run RUNNING: the controller ends it FAILED with Slurm's state and
  reason. A requeued task (``scontrol requeue``, preemption) deletes the run of its earlier
  attempt, so a case never has two runs; the run's ``slurm_restarts`` tag counts the requeues.
- Ctrl-C of the submitting session cancels the array; the runs end KILLED.
- ``--reuse`` after the submitting session died: cases with a FINISHED run are taken from it, cases
  whose task (of the dead session's array) is still running are waited for
  (:class:`RunningTaskCaseRun`), only the rest are submitted again.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from harness.analysis.thresholds import threshold_misses
from harness.execution.executors import LiveCaseRun, LocalExecutor
from harness.study.loading import Case
from harness.tracking import tags as T
from harness.tracking.case_runs import RunWriter, find_reusable, record_of
from harness.tracking.readback import recorded_metrics
from harness.tracking.records import CaseRecord

_IMPORTED_AT = time.time()  # in a task: when the unpickled function's module was loaded
GENERIC = {
    "timeout_min",
    "gpus_per_node",
    "cpus_per_task",
    "mem_gb",
    "nodes",
    "tasks_per_node",
    "name",
    "stderr_to_stdout",
}


class SlurmError(Exception):
    pass


def parse_parameters(items: list[str] | None) -> dict[str, Any]:
    """``["partition=gpu", "timeout_min=600"]`` -> submitit's AutoExecutor parameters."""
    import submitit

    valid_slurm = submitit.SlurmExecutor._valid_parameters()
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SlurmError(f"--slurm {item!r}: expected KEY=VALUE, e.g. --slurm partition=gpu")
        if key in GENERIC:
            params[key] = yaml.safe_load(value)
        elif key.removeprefix("slurm_") in valid_slurm:
            params["slurm_" + key.removeprefix("slurm_")] = yaml.safe_load(value)
        else:
            known = sorted(GENERIC | valid_slurm)
            raise SlurmError(f"--slurm {key}=...: not a submitit Slurm parameter; expected one of {', '.join(known)}")
    return params


def asks_for_gpu(params: dict[str, Any]) -> bool:
    """Whether these parameters give each task a GPU."""
    counts = [params.get(k) for k in ("gpus_per_node", "slurm_gpus_per_node", "slurm_gpus_per_task", "slurm_num_gpus")]
    return any(counts) or "gpu" in str(params.get("slurm_gres", ""))


def check_store(uri: str) -> None:
    from harness.tracking.store import is_local_sqlite

    if is_local_sqlite(uri):
        raise SlurmError(
            f"--executor slurm records every case from the compute nodes, so the store must be a tracking "
            f"server they reach (MLFLOW_TRACKING_URI=http://host:port; docs/cluster.md), "
            f"not the local SQLite file {uri} (SQLite's file locking is unsafe on network file systems)"
        )


def submit(
    session, cases: list[Case], folder: str | Path, params: dict[str, Any], default_timeout_s: float | None = None
) -> dict[str, Any]:
    """Submit ``cases`` as one job array; returns case id -> submitit job. ``default_timeout_s``
    (``--case-timeout``) applies in the tasks to cases whose study has no ``timeout_s``."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"), cluster="slurm")
    executor.update_parameters(**{"name": "harness", **params})  # --slurm name=... may rename it
    n = len(cases)
    jobs = executor.map_array(run_task, [session.to_dict()] * n, cases, [time.time()] * n, [default_timeout_s] * n)
    return {case.id: job for case, job in zip(cases, jobs)}


def find_running_task(session, case: Case):
    """A run of this case still being recorded by an array task of an earlier session (same config
    hash and harness version, RUNNING, live heartbeat), or None: ``--reuse`` waits for it instead
    of submitting the case again."""
    from mlflow.tracking import MlflowClient

    from harness.tracking.heartbeat import is_stale
    from harness.tracking.provenance import harness_version

    runs = T.same_case_runs(
        MlflowClient(session.uri),
        session.parents[case.experiment]["experiment_id"],
        case.config_hash,
        harness_version(),
        "RUNNING",
    )
    return next((r for r in runs if T.TASK_TAG in r.data.tags and not is_stale(r)), None)


def left_to_submit(session, cases: list[Case]) -> tuple[list[Case], dict[str, Any]]:
    """``--reuse``: the cases to submit, and case id -> the run of an earlier session's task still
    running it; cases with a FINISHED run are neither."""
    cases = [c for c in cases if find_reusable(session, c) is None]
    running = {c.id: run for c in cases if (run := find_running_task(session, c)) is not None}
    return [c for c in cases if c.id not in running], running


def array_id(jobs: dict[str, Any]) -> str | None:
    first = next(iter(jobs.values()), None)
    return first.job_id.split("_")[0] if first is not None else None


def cancel(jobs: dict[str, Any]) -> None:
    """Cancel the whole array (Ctrl-C of the submitting session)."""
    array = array_id(jobs)
    if array:
        subprocess.run(["scancel", array], capture_output=True)


def wait_until_gone(jobs: dict[str, Any], timeout_s: float = 60) -> None:
    """Wait until no task of the array is pending or running (after :func:`cancel`)."""
    array = array_id(jobs)
    deadline = time.monotonic() + timeout_s
    while array and time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", array, "-o", "%i"], capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(1)


def task_name() -> str:
    return f"{os.environ.get('SLURM_ARRAY_JOB_ID', '?')}_{os.environ.get('SLURM_ARRAY_TASK_ID', '?')}"


def run_task(
    session_dict: dict, case: Case, submitted_at: float | None = None, default_timeout_s: float | None = None
) -> dict:
    """One array task: run one case and record its run; returns the case record as a dict (never
    raises for a failing case: the run says FAILED, the record carries the error). The run's timings
    add ``slurm_wait_s`` (submission to the task's Python running: queue, sbatch, srun, interpreter)
    and ``slurm_startup_s`` (from there to the case's run being created: imports, device, store)."""
    from mlflow.tracking import MlflowClient

    from harness.execution import devices
    from harness.execution.run import run_case
    from harness.tracking import sessions
    from harness.tracking.spool import is_unreachable
    from harness.tracking.store import retry_locked

    devices.pin_this_process(0, 1, None)  # the GPU Slurm gave (CUDA_VISIBLE_DEVICES), else its cores
    session = sessions.Session.from_dict(session_dict)
    name = task_name()
    client = MlflowClient(session.uri)
    try:
        for attempt in T.task_runs(client, session.parents[case.experiment]["experiment_id"], name):
            retry_locked(client.delete_run, attempt.info.run_id)  # a requeued task: one run per case
    except Exception as exc:
        if not (session.spool and is_unreachable(exc)):
            raise  # unreachable: the case runs and its run goes to the spool (an earlier attempt's may stay)
    writer = RunWriter.create(
        session,
        case,
        devices.describe_device(),
        worker=f"slurm {name}",
        extra_tags={T.TASK_TAG: name, T.RESTARTS_TAG: os.environ.get("SLURM_RESTART_COUNT", "0")},
    )
    run = LiveCaseRun(writer, case, {"default_timeout_s": default_timeout_s, "setup_jax": True})
    overhead = {"slurm_startup_s": time.time() - _IMPORTED_AT}
    if submitted_at is not None:
        overhead["slurm_wait_s"] = _IMPORTED_AT - submitted_at

    def run_with_overhead(case, **options):
        from submitit.core.utils import UncompletedJobError

        try:
            result = run_case(case, **options)
        except UncompletedJobError as exc:  # raised by submitit's handler of Slurm's time-limit signal
            raise SlurmError(f"Slurm's time limit for task {name} (--slurm timeout_min) ended the case: {exc}") from exc
        result.timings.update(overhead)
        return result

    try:
        run.execute(run_with_overhead)
    except Exception:  # recorded in the run (FAILED, traceback.txt) and in the record
        pass
    finally:
        run.close()
    record = run.record().to_dict()
    gc.freeze()  # the task's process exits next: skip the final garbage collection (~1.3 s of CPU)
    return record


def slurm_state(job_id: str) -> tuple[str, str]:
    """(state, reason) of an array task from ``scontrol`` (no accounting database needed)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
    return fields.get("JobState", "UNKNOWN"), fields.get("Reason", "")


FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "UNKNOWN",
}


def wait_for(job, poll_s: float = 1.0) -> dict | tuple[str, str]:
    """The task's record once it has one, or (state, reason) if Slurm ended it without one."""
    ended_since = None
    while True:
        if job.paths.result_pickle.exists():
            outcome, value = _load_result(job)
            if outcome == "success":
                return value
            return "FAILED", f"the task raised: {str(value)[-2000:]}"
        state, reason = slurm_state(job.job_id)
        if state in FINAL_STATES:
            # the result file may land just after the state changes: look again before giving up
            ended_since = ended_since or time.monotonic()
            if time.monotonic() - ended_since > 3:
                return state, reason
        else:
            ended_since = None
        time.sleep(poll_s)


def _load_result(job):
    import pickle

    with open(job.paths.result_pickle, "rb") as f:
        return pickle.load(f)


class SlurmCaseRun:
    """The pytest side of one array task: waits for it, reads its run back, checks thresholds."""

    reused = False

    def __init__(self, session, case: Case, job):
        from mlflow.tracking import MlflowClient

        self.session, self.case, self.job = session, case, job
        self.task = job.job_id if job is not None else None
        self.client = MlflowClient(session.uri)
        self.run_id: str | None = None
        self.status = "PENDING"
        self.metrics: dict[str, float] = {}
        self.misses: list[str] = []
        self.error: str | None = None
        self.spooled: str | None = None

    def execute(self, _run=None):
        outcome = wait_for(self.job)
        if isinstance(outcome, tuple):
            self._end_killed_task(*outcome)
            raise SlurmError(self.error)
        record = CaseRecord.from_dict(outcome)
        self.spooled = record.spooled
        self._read_back(record.run_id, record.status, record.error, record.metrics if record.spooled else None)

    def _read_back(self, run_id: str, status: str, error: str | None, spooled_metrics: dict | None = None) -> None:
        """What the task recorded: its status, metrics and threshold misses (a task whose run went
        to the spool returned its metrics: the store may still be unreachable)."""
        self.run_id, self.status, self.error = run_id, status, error
        if self.status != "FINISHED":
            raise SlurmError(f"slurm task {self.task}: {self.error}")
        self.metrics = (
            spooled_metrics if spooled_metrics is not None else recorded_metrics(self.client.get_run(self.run_id))
        )
        self.misses = threshold_misses(self.case.id, self.case.thresholds, self.metrics)

    def _end_killed_task(self, state: str, reason: str) -> None:
        from harness.tracking.store import retry_locked

        self.status = "FAILED"
        self.error = f"Slurm ended task {self.job.job_id} without a result: {state}" + (
            f" ({reason})" if reason else ""
        )
        for run in T.task_runs(
            self.client, self.session.parents[self.case.experiment]["experiment_id"], self.job.job_id
        ):
            self.run_id = run.info.run_id
            if run.info.status == "RUNNING":
                retry_locked(self.client.set_tag, run.info.run_id, T.FAILURE_TAG, self.error)
                retry_locked(self.client.set_terminated, run.info.run_id, "FAILED")

    def close(self) -> None:
        pass  # the task ends its own run; a task that died is ended by execute or the session's close

    def record(self) -> CaseRecord:
        return record_of(
            self.case,
            run_id=self.run_id,
            status=self.status,
            metrics=self.metrics,
            misses=self.misses,
            error=self.error,
            reused=self.reused,
            spooled=self.spooled,
        )


class RunningTaskCaseRun(SlurmCaseRun):
    """``--reuse`` of a case whose array task, submitted by an earlier session, is still running:
    waits for that task's run to end and takes its result, as for a reused case."""

    reused = True

    def __init__(self, session, case: Case, run):
        super().__init__(session, case, None)
        self.run_id, self.task = run.info.run_id, run.data.tags[T.TASK_TAG]

    def execute(self, _run=None, poll_s: float = 2.0):
        from harness.tracking.heartbeat import is_stale

        while (run := self.client.get_run(self.run_id)).info.status == "RUNNING":
            if is_stale(run):  # the task died; the next session ends its run FAILED
                self.status = "FAILED"
                self.error = f"slurm task {self.task} of an earlier session stopped beating before its case ended"
                raise SlurmError(self.error)
            time.sleep(poll_s)
        self._read_back(self.run_id, run.info.status, run.data.tags.get(T.FAILURE_TAG))


class SlurmExecutor:
    """The selected cases as one Slurm job array (submitted by :meth:`start`, in the controller);
    each case's run is its task's, read back. With ``--reuse``, cases with a finished run are taken
    from it and cases still running in an earlier session's array are waited for."""

    def __init__(
        self,
        session,
        params: dict[str, Any],
        folder: str,
        local: LocalExecutor,
        default_timeout_s: float | None = None,
        reuse: bool = False,
    ):
        self.session, self.params, self.folder, self.local = session, params, folder, local
        self.default_timeout_s, self.reuse = default_timeout_s, reuse
        self.jobs: dict[str, Any] = {}
        self.running: dict[str, Any] = {}

    def start(self, cases: list[Case]) -> list[str]:
        lines = []
        if self.reuse:
            cases, self.running = left_to_submit(self.session, cases)
            if self.running:
                tasks = sorted(run.data.tags[T.TASK_TAG] for run in self.running.values())
                lines.append(
                    f"harness: {len(self.running)} case(s) still running in an earlier session's array "
                    f"({', '.join(tasks)}): waiting for them, not submitting them again"
                )
        if cases:
            self.jobs = submit(self.session, cases, self.folder, self.params, self.default_timeout_s)
            lines.append(
                f"harness: submitted {len(cases)} case(s) as Slurm job array {array_id(self.jobs)} "
                f"(logs: {self.folder})"
            )
        return lines

    def open_run(self, case: Case):
        if case.id in self.jobs:
            return SlurmCaseRun(self.session, case, self.jobs[case.id])
        if case.id in self.running:
            return RunningTaskCaseRun(self.session, case, self.running[case.id])
        return self.local.open_run(case)  # --reuse: a finished run stands for it

    def stop(self, interrupted: bool) -> None:
        if interrupted and self.jobs:
            cancel(self.jobs)
            wait_until_gone(self.jobs)
