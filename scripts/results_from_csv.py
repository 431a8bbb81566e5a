"""Tables of a study's results from its ``--results-csv`` file: per config and learner the mean ± sd
over seeds of the chosen metrics, then the paired comparisons (``harness.analysis.compare``: the
same statements as the terminal summary and the report) of those metrics.

    python scripts/results_from_csv.py CSV [--metric edge_mae ...] [--learner-from PARAM ...] [--config-from PARAM ...]

``--learner-from`` appends a param's value to the learner's name (to compare, say, joint and
marginal DiBS as two learners: ``--learner-from inference.model.type``); ``--config-from`` sets the
config label from params instead of the case id (cases of one label and seed are paired).
"""

from __future__ import annotations

import argparse

import pandas as pd

from harness.analysis.compare import paired_comparisons
from harness.tracking.records import CaseRecord


def records(csv: str, learner_from: list[str], config_from: list[str]) -> list[CaseRecord]:
    df = pd.read_csv(csv)
    out = []
    for _, row in df.iterrows():
        metrics = {
            k.removeprefix("metrics."): float(v) for k, v in row.items() if k.startswith("metrics.") and pd.notna(v)
        }
        learner = "-".join([row["learner"], *(str(row.get(f"params.{p}", "joint")) for p in learner_from)])
        learner = learner.replace("nan", "joint")
        record = CaseRecord(
            case_id=row["case_id"], learner=learner, seed=int(row["seed"]), metrics=metrics, status=row["status"]
        )
        if config_from:
            label = "-".join(str(row.get(f"params.{p}")) for p in config_from)
            record = CaseRecord(
                case_id=f"{label}-s{int(row['seed'])}-{learner}",
                learner=learner,
                seed=record.seed,
                metrics=metrics,
                status=record.status,
            )
        else:
            config = record.case_id.removesuffix(f"-s{record.seed}-{row['learner']}")
            record = CaseRecord(
                case_id=f"{config}-s{record.seed}-{learner}",
                learner=learner,
                seed=record.seed,
                metrics=metrics,
                status=record.status,
            )
        out.append(record)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--metric", action="append")
    ap.add_argument("--learner-from", action="append", default=[])
    ap.add_argument("--config-from", action="append", default=[])
    args = ap.parse_args()
    metrics = args.metric or ["edge_mae", "graph_tv"]
    recs = records(args.csv, args.learner_from, args.config_from)
    rows = []
    for r in recs:
        rows.append({"config": r.config, "learner": r.learner, **{m: r.metrics.get(m) for m in metrics}})
    df = pd.DataFrame(rows)
    table = df.groupby(["config", "learner"])[metrics].agg(["mean", "std", "count"])
    print(table.round(3).to_string())
    print()
    for p in paired_comparisons(recs):
        if p.metric in metrics:
            print(f"{p.config}: {p.statement}")


if __name__ == "__main__":
    main()
