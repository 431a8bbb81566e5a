"""What a session will run, said before it runs: where each case may run, and how long it takes.

A study may declare ``requires: [gpu]`` (the paper-scale studies do: a case takes hours on a CPU).
On a machine without a GPU such cases are skipped with a reason that says how to run them anyway
(``--run-anywhere``). At the start of a session :func:`plan_lines` lists the cases per study and
an estimate of the time, from earlier FINISHED runs of the same config hash in the store (the
median of their durations; a config hash not seen before has no estimate and says so). With
``--reuse`` the cases an earlier run stands for are counted as reused, not as to run.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from harness.study.loading import Case

# measured CPU times of a paper-scale case (d = 20, 3000 steps, 2 cores): the linear fit took 104-130 s
# (SF) to 126-399 s (ER, sharing its cores) in docs/results/paper_linear/report.md; a nonlinear case ~20 min
CPU_TIME_OF_A_PAPER_CASE = {"linear_gaussian": "2-4 minutes", "nonlinear_gaussian": "about 20 minutes"}


def skip_reason(case: Case, has_gpu: bool, run_anywhere: bool) -> str | None:
    """Why this case does not run here, or None."""
    if "gpu" in case.requires and not has_gpu and not run_anywhere:
        model = case.config["data"]["model"]["type"]
        cost = CPU_TIME_OF_A_PAPER_CASE.get(model, "more than on a GPU")
        return (
            f"study {case.study!r} requires a GPU (requires: [gpu] in {case.path}) and its cases get none here; "
            f"--run-anywhere runs it anyway (a paper-scale {model} case took {cost} on 2 CPU cores), "
            "--executor slurm --slurm gpus_per_node=1 on a cluster's GPUs"
        )
    return None


@dataclass
class History:
    """What the store knows of earlier runs of these configs."""

    durations: dict[str, list[float]] = field(default_factory=dict)  # config hash -> seconds, FINISHED runs
    reusable: set[str] = field(default_factory=set)  # config hashes that --reuse would take


def plan_lines(
    cases: list[Case], skipped: dict[str, str], history: History, n_workers: int, reuse: bool = False
) -> list[str]:
    """The session's plan: per study, the cases to run, those ``--reuse`` takes from earlier runs,
    those skipped (with the first reason) and the estimated case time; then the estimated wall
    time over the workers."""
    by_study: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_study[case.study].append(case)
    reused = {c.id for c in cases if reuse and c.id not in skipped and c.config_hash in history.reusable}
    to_run = [c for c in cases if c.id not in skipped and c.id not in reused]
    lines = [
        f"harness: {len(to_run)} case(s) to run, "
        + (f"{len(reused)} reused, " if reuse else "")
        + f"{len(skipped)} skipped, on {max(n_workers, 1)} worker(s)"
    ]
    total, known = 0.0, 0
    for study, members in by_study.items():
        run_here = [c for c in members if c.id not in skipped and c.id not in reused]
        estimates = [
            statistics.median(history.durations[c.config_hash]) for c in run_here if c.config_hash in history.durations
        ]
        total += sum(estimates)
        known += len(estimates)
        text = f"  {study}: {len(run_here)} to run"
        if run_here:
            text += (
                f", ~{_duration(sum(estimates))} for the {len(estimates)} with earlier runs"
                if estimates
                else ", no earlier run to estimate from"
            )
        if n_reused := sum(c.id in reused for c in members):
            text += f", {n_reused} reused"
        reasons = [skipped[c.id] for c in members if c.id in skipped]
        if reasons:
            text += f"; {len(reasons)} skipped: {reasons[0]}"
        lines.append(text)
    if known:
        lines.append(
            f"  estimate from earlier runs of the same config hash: ~{_duration(total / max(n_workers, 1))} "
            f"of wall time for {known} of {len(to_run)} case(s)"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
