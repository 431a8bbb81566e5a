"""End-of-session views of the case records: terminal tables, the CSV export, and the metrics of
the session's parent runs (per-learner aggregates and paired comparisons)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.compare import paired_comparisons
from harness.evaluation.registry import lower_is_better
from harness.tracking.records import CaseRecord

MAIN_METRICS = (
    "eshd",
    "auroc",
    "auprc",
    "negll_obs",
    "negll_intrv",
    "n_cyclic",
    "fit_s",
    "eshd_mixture",
    "auroc_mixture",
)


def records_frame(records: list[CaseRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {k: getattr(r, k) for k in ("case_id", "study", "learner", "seed", "run_id", "status", "thresholds")}
        if r.reused:
            row["status"] = "REUSED"
        if r.spooled:
            row["status"] = f"{r.status} (spooled)"
        row.update(r.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def case_table(records: list[CaseRecord]) -> str:
    """One row per case: run id, main metrics, threshold verdict."""
    df = records_frame(records)
    cols = ["case_id", "run_id", "status", "thresholds"] + [m for m in MAIN_METRICS if m in df.columns]
    return df[cols].sort_values("case_id").to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def learner_table(records: list[CaseRecord]) -> str:
    """Per study and learner: mean ± sd over seeds of the main metrics, and the number of seeds."""
    df = records_frame(records)
    df = df[df["status"].isin(["FINISHED", "REUSED", "FINISHED (spooled)"])]
    metrics = [m for m in MAIN_METRICS if m in df.columns]
    if df.empty or not metrics:
        return "(no finished case)"
    rows = []
    for (study, learner), group in df.groupby(["study", "learner"], sort=True):
        row = {"study": study, "learner": learner, "n_seeds": len(group)}
        for m in metrics:
            vals = group[m].dropna()
            row[m] = f"{vals.mean():.3f} ± {vals.std(ddof=1) if len(vals) > 1 else 0.0:.3f}" if len(vals) else "-"
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


def paired_lines(records: list[CaseRecord]) -> str:
    """One line per config, learner pair and metric (see ``harness.analysis.compare``): every
    statement, what ``-v`` shows and the report holds."""
    finished = [r for r in records if r.metrics]
    return "\n".join(f"{p.config}: {p.statement}" for p in paired_comparisons(finished))


TERMINAL_METRICS = ("eshd", "auroc")  # the metrics CI gates with thresholds: the terminal's table
ALPHA = 0.05


def paired_overview(
    records: list[CaseRecord], metrics: tuple[str, ...] = TERMINAL_METRICS, alpha: float = ALPHA
) -> str:
    """The paired comparison as a user reads it at the end of a session: per config and learner
    pair, one row with each of ``metrics``' mean difference (a − b), the learner that is better on
    average and the Wilcoxon p; then, of every compared metric, only the statements whose p is
    below ``alpha`` (the rest: :func:`paired_lines`, ``-v``, the report)."""
    comparisons = paired_comparisons([r for r in records if r.metrics])
    rows: dict[tuple[str, str], dict] = {}
    for p in comparisons:
        if p.metric in metrics:
            row = rows.setdefault((p.config, p.a, p.b), {"config": p.config, "pair": f"{p.a} - {p.b}", "seeds": p.n})
            row[f"{p.metric} diff"] = _overview_cell(p)
    if not rows:
        return ""
    table = pd.DataFrame(list(rows.values())).fillna("-").to_string(index=False)
    significant = [f"{p.config}: {p.statement}" for p in comparisons if p.p_value < alpha]
    lines = [table, ""]
    if significant:
        lines += [f"significant (Wilcoxon p < {alpha:g}), of {len(comparisons)} comparisons:", *significant]
    else:
        lines.append(f"no difference significant at Wilcoxon p < {alpha:g} in {len(comparisons)} comparisons")
    return "\n".join(lines)


def _overview_cell(p) -> str:
    """``+0.41 ensemble p=0.03``: the mean difference, the better learner on average, p."""
    if p.diff_mean == 0:
        better = "same"
    else:
        a_better = (p.diff_mean < 0) == lower_is_better(p.metric)
        better = p.a if a_better else p.b
    return f"{p.diff_mean:+.3g} {better} " + (f"p={p.p_value:.2g}" if np.isfinite(p.p_value) else "p=n/a")


def aggregate_metrics(records: list[CaseRecord]) -> dict[str, float]:
    """``<learner>.<metric>_mean`` / ``_std``, and ``<learner>.n_cases``, over the given case records."""
    by_learner: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for metric, value in r.metrics.items():
            by_learner.setdefault(r.learner, {}).setdefault(metric, []).append(value)
    out = {}
    for learner, metrics in by_learner.items():
        for metric, values in metrics.items():
            out[f"{learner}.{metric}_mean"] = float(np.mean(values))
            out[f"{learner}.{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out[f"{learner}.n_cases"] = float(sum(r.learner == learner for r in records))
    return out


def parent_metrics(records: list[CaseRecord]) -> dict[str, dict[str, float]]:
    """Experiment -> what its session parent run logs: the aggregates of its cases with metrics and
    their paired comparisons (finite values only)."""
    out = {}
    for experiment in sorted({r.experiment for r in records}):
        mine = [r for r in records if r.experiment == experiment and r.metrics]
        metrics = aggregate_metrics(mine)
        for paired in paired_comparisons(mine):
            metrics.update({k: v for k, v in paired.as_metrics().items() if np.isfinite(v)})
        out[experiment] = metrics
    return out


def parent_metrics_of_runs(experiment: str, runs: list) -> dict[str, float]:
    """What a session's parent logs, computed from its child runs as the store holds them (after a
    replay of the spool: ``harness.tracking.spool.replay``)."""
    from harness.tracking.readback import record_of_run

    return parent_metrics([record_of_run(run, experiment) for run in runs]).get(experiment, {})


def write_csv(records: list[CaseRecord], path: str | Path) -> Path:
    """One row per case: case id, learner, seed, flattened params, metrics, run id, status."""
    rows = []
    for r in sorted(records, key=lambda r: r.case_id):
        row = {"case_id": r.case_id, "learner": r.learner, "seed": r.seed}
        row.update({f"params.{k}": v for k, v in r.params.items()})
        row.update({f"metrics.{k}": v for k, v in r.metrics.items()})
        row.update(
            {
                "run_id": r.run_id,
                "status": r.status,
                "thresholds": r.thresholds,
                "reused": r.reused,
                "spooled": r.spooled or "",
            }
        )
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def open_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser (the MLflow server's UI)"
    return f"mlflow ui --backend-store-uri {uri}"
