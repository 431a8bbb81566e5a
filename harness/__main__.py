"""Command line: ``python -m harness report --experiment NAME [--out DIR] [--parent RUN_ID] [--filter F]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import DEFAULT_EXPERIMENT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="tables and plots from the runs of an experiment")
    report.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    report.add_argument("--out", type=Path, help="output directory (default: reports/<experiment>/)")
    report.add_argument("--parent", help="only the cases of this session (parent run id)")
    report.add_argument("--filter", default="", help="an MLflow search filter, e.g. \"tags.config_name = 'smoke'\"")
    report.add_argument("--mlflow-uri", help="tracking URI when MLFLOW_TRACKING_URI is not set")
    args = parser.parse_args(argv)

    from harness.report import build_report
    from harness.tracking import resolve_uri

    out = args.out or Path("reports") / args.experiment
    path = build_report(resolve_uri(args.mlflow_uri), args.experiment, out, args.parent, args.filter)
    print(f"wrote {path} and {path.with_suffix('.html')} (with the figures in {path.parent})")


if __name__ == "__main__":
    main()
