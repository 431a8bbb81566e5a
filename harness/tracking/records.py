"""A case's record: what the controller keeps of each case, however it ran (in this process, an
xdist worker or a Slurm task; reused from an earlier session; ended by the session because its
process died), for the terminal summary, the CSV, the parent runs' aggregates and the gate.

It travels from a worker as JSON (pytest's report) and from a Slurm task as the task's return value:
:meth:`CaseRecord.to_dict` and :meth:`CaseRecord.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def config_label(case_id: str, seed: int, learner: str) -> str:
    """The study and sweep point of a case id (``paper-sf-s0-ensemble`` -> ``paper-sf``): the id
    without its ``-s<seed>-<learner>`` ending, which the run's seed and learner tags give (a learner
    name may contain ``-``)."""
    return case_id.removesuffix(f"-s{seed}-{learner}")


@dataclass
class CaseRecord:
    case_id: str
    learner: str
    seed: int
    study: str = ""
    experiment: str = ""
    config_hash: str | None = None
    comparison_hash: str | None = None  # absent in runs older than it
    run_id: str | None = None
    status: str = "PENDING"  # FINISHED, FAILED, KILLED (MLflow's), or PENDING before a Slurm task ends
    metrics: dict[str, float] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)  # one message per missed threshold
    params: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    reused: bool = False
    spooled: str | None = None  # the record's directory in the spool, while the store was unreachable

    @property
    def config(self) -> str:
        """The study and sweep point (:func:`config_label`): cases of one config and seed are paired."""
        return config_label(self.case_id, self.seed, self.learner)

    @property
    def thresholds(self) -> str:
        """The verdict: passed / failed, or ``-`` for a case that did not finish."""
        return "failed" if self.misses else ("passed" if self.status == "FINISHED" else "-")

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED" and bool(self.metrics)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CaseRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
