"""Command line (``dibs-bench ...``, the console script, or ``python -m harness ...``):

    dibs-bench report --experiment NAME [--out DIR] [--parent RUN_ID | --all-sessions] [--filter F]
    dibs-bench history --experiment NAME [--metric eshd ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evaluation.registry import COMPARED
from harness.study.loading import DEFAULT_EXPERIMENT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness" if sys.argv[0].endswith("__main__.py") else "dibs-bench")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="tables and plots from the runs of an experiment")
    report.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    report.add_argument("--out", type=Path, help="output directory (default: reports/<experiment>/)")
    report.add_argument("--parent", help="only the cases of this session (parent run id; default: the latest session)")
    report.add_argument("--all-sessions", action="store_true", help="every session's cases, not only the latest")
    report.add_argument("--filter", default="", help="an MLflow search filter, e.g. \"tags.config_name = 'smoke'\"")
    report.add_argument("--mlflow-uri", help="tracking URI (beats MLFLOW_TRACKING_URI)")
    history = commands.add_parser("history", help="every session's mean and interval per learner and metric, in time order")
    history.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    history.add_argument("--metric", action="append", choices=COMPARED + tuple(f"{m}_mixture" for m in COMPARED),
                         help="a metric to show (repeatable; default: all compared metrics)")
    history.add_argument("--out", type=Path, help="output directory (default: reports/<experiment>/)")
    history.add_argument("--mlflow-uri", help="tracking URI (beats MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)

    from harness.tracking.store import disable_mlflow_telemetry, resolve_uri

    disable_mlflow_telemetry()

    out = args.out or Path("reports") / args.experiment
    if args.command == "history":
        from harness.analysis.history import write_history

        png, md = write_history(resolve_uri(args.mlflow_uri), args.experiment, out, tuple(args.metric or COMPARED))
        print(f"wrote {png} and {md}")
        return
    from harness.analysis.report import build_report

    path = build_report(resolve_uri(args.mlflow_uri), args.experiment, out, args.parent, args.filter, args.all_sessions)
    print(f"wrote {path} and {path.with_suffix('.html')} (with the figures in {path.parent})")


if __name__ == "__main__":
    main()
