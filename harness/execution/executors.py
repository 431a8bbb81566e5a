"""How a case is run and recorded: the :class:`CaseRun` the ``case_run`` fixture yields, and the
executors that make them.

- :class:`CaseRun` is one interface for a case's run, however it comes about: a live run of this
  process (:class:`LiveCaseRun`), a finished run of an earlier session that ``--reuse`` takes
  (:class:`ReusedCaseRun`), or the run of a Slurm array task read back (``harness.execution.slurm``).
- An :class:`Executor` decides which: :class:`LocalExecutor` runs cases in this process (the only
  process or an xdist worker); ``harness.execution.slurm.SlurmExecutor`` submits them as one job
  array first. ``run_case`` knows nothing of either.

A case is judged here (its threshold misses) before its record reaches the tracking layer, which
writes what it is given.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, Protocol

from harness.analysis.thresholds import threshold_misses
from harness.execution import interrupts
from harness.study.loading import Case
from harness.tracking.case_runs import RunWriter, find_reusable, record_of
from harness.tracking.readback import recorded_metrics
from harness.tracking.records import CaseRecord
from harness.tracking.sessions import Session


class CaseRun(Protocol):
    """A case's run as the ``case_run`` fixture and the session controller see it."""

    case: Case
    misses: list[str]  # one message per missed threshold (empty until the case has metrics)

    def execute(self, run: Callable[..., Any]) -> Any:
        """Run the case with ``run(case, **options)`` (or wait for, or take, its result), record it,
        and re-raise what the case raised."""

    def close(self) -> None:
        """Leave no run RUNNING (called after the case, whatever happened)."""

    def record(self) -> CaseRecord:
        """What the controller keeps of the case."""


class Executor(Protocol):
    def start(self, cases: list[Case]) -> list[str]:
        """Before the first case: send ``cases`` wherever they run; lines that say what was done."""

    def open_run(self, case: Case) -> CaseRun:
        """The case's run, opened before the case."""

    def stop(self, interrupted: bool) -> None:
        """After the last case (``interrupted``: the session was stopped)."""


class LiveCaseRun:
    """A new child run, the case run in this process."""

    reused = False

    def __init__(self, writer: RunWriter, case: Case, options: dict[str, Any] | None = None):
        self.writer, self.case, self.options = writer, case, options or {}
        self.metrics: dict[str, float] = {}
        self.misses: list[str] = []
        self.error: str | None = None

    def execute(self, run: Callable[..., Any]):
        try:
            result = run(self.case, **self.options)
            self.metrics = dict(result.metrics)
            self.misses = threshold_misses(self.case.id, self.case.thresholds, self.metrics)
            self.writer.log_result(self.case, result, self.misses)
        except BaseException as exc:
            self.error = interrupts.describe(exc)
            self.writer.fail(self.error, "".join(traceback.format_exception(exc)), isinstance(exc, KeyboardInterrupt))
            raise
        return result

    def close(self) -> None:
        if self.writer.status == "RUNNING":
            self.error = self.error or "the case ended before its run was completed"
            self.writer.end_unfinished(self.error)

    def record(self) -> CaseRecord:
        spooled = self.writer.spool_path
        return record_of(
            self.case,
            run_id=self.writer.run_id,
            status=self.writer.status,
            metrics=self.metrics,
            misses=self.misses,
            error=self.error,
            spooled=str(spooled) if spooled else None,
        )


class ReusedCaseRun:
    """``--reuse``: a FINISHED run of the same config hash and harness version stands for the case.
    Nothing runs and no run is made; its recorded metrics are the result, judged again against the
    case's thresholds."""

    reused = True

    def __init__(self, case: Case, run):
        self.case, self.run_id = case, run.info.run_id
        self.metrics = recorded_metrics(run)
        self.misses = threshold_misses(case.id, case.thresholds, self.metrics)

    def execute(self, run: Callable[..., Any] | None = None) -> None:
        return None

    def close(self) -> None:
        pass

    def record(self) -> CaseRecord:
        return record_of(
            self.case, run_id=self.run_id, status="FINISHED", metrics=self.metrics, misses=self.misses, reused=True
        )


class LocalExecutor:
    """Cases run in this process: each gets a new child run, or with ``reuse`` a finished one. The
    device is read when the first case runs here (it starts JAX, which a Slurm controller, say,
    never needs)."""

    def __init__(self, session: Session, worker: str, reuse: bool = False, options: dict[str, Any] | None = None):
        self.session, self.worker, self.reuse = session, worker, reuse
        self.options = options or {}  # keyword arguments of run_case
        self._device: str | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            from harness.execution.devices import describe_device

            self._device = describe_device()
        return self._device

    def start(self, cases: list[Case]) -> list[str]:
        return []

    def open_run(self, case: Case) -> CaseRun:
        previous = find_reusable(self.session, case) if self.reuse else None
        if previous is not None:
            return ReusedCaseRun(case, previous)
        return LiveCaseRun(RunWriter.create(self.session, case, self.device, self.worker), case, self.options)

    def stop(self, interrupted: bool) -> None:
        pass
