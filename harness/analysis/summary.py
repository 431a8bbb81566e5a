"""End-of-session views of the case records: terminal tables and the CSV export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.analysis.compare import paired_comparisons

MAIN_METRICS = ("eshd", "auroc", "auprc", "negll_obs", "negll_intrv", "n_cyclic", "fit_s", "eshd_mixture",
                "auroc_mixture")


def records_frame(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ("case_id", "study", "learner", "seed", "run_id", "status", "thresholds")}
        if r.get("reused"):
            row["status"] = "REUSED"
        row.update(r.get("metrics") or {})
        rows.append(row)
    return pd.DataFrame(rows)


def case_table(records: list[dict]) -> str:
    """One row per case: run id, main metrics, threshold verdict."""
    df = records_frame(records)
    cols = ["case_id", "run_id", "status", "thresholds"] + [m for m in MAIN_METRICS if m in df.columns]
    return df[cols].sort_values("case_id").to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def learner_table(records: list[dict]) -> str:
    """Per study and learner: mean ± sd over seeds of the main metrics, and the number of seeds."""
    df = records_frame(records)
    df = df[df["status"].isin(["FINISHED", "REUSED"])]
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


def paired_lines(records: list[dict]) -> str:
    """One line per config, learner pair and metric (see ``harness.analysis.compare``)."""
    finished = [r for r in records if r.get("metrics")]
    return "\n".join(f"{p.config}: {p.statement}" for p in paired_comparisons(finished))


def write_csv(records: list[dict], path: str | Path) -> Path:
    """One row per case: case id, learner, seed, flattened params, metrics, run id, status."""
    rows = []
    for r in sorted(records, key=lambda r: r["case_id"]):
        row = {"case_id": r["case_id"], "learner": r["learner"], "seed": r["seed"]}
        row.update({f"params.{k}": v for k, v in (r.get("params") or {}).items()})
        row.update({f"metrics.{k}": v for k, v in (r.get("metrics") or {}).items()})
        row.update({"run_id": r["run_id"], "status": r["status"], "thresholds": r.get("thresholds"),
                    "reused": bool(r.get("reused"))})
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def open_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser (the MLflow server's UI)"
    return f"mlflow ui --backend-store-uri {uri}"
