"""Command line (``dibs-bench ...``, the console script, or ``python -m harness ...``):

dibs-bench report --experiment NAME [--out DIR] [--parent RUN_ID | --all-sessions] [--filter F]
dibs-bench history --experiment NAME [--metric eshd ...] [--out DIR]
dibs-bench sync [--spool DIR] [--mlflow-uri URI] [--from-uri URI]
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
    history = commands.add_parser(
        "history", help="every session's mean and interval per learner and metric, in time order"
    )
    history.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    history.add_argument(
        "--metric",
        action="append",
        choices=COMPARED + tuple(f"{m}_mixture" for m in COMPARED),
        help="a metric to show (repeatable; default: all compared metrics)",
    )
    history.add_argument("--out", type=Path, help="output directory (default: reports/<experiment>/)")
    history.add_argument("--mlflow-uri", help="tracking URI (beats MLFLOW_TRACKING_URI)")
    sync = commands.add_parser("sync", help="replay the runs spooled while the tracking store was unreachable")
    sync.add_argument("--spool", help="the spool directory (default: $HARNESS_SPOOL, else ./mlflow-spool)")
    sync.add_argument(
        "--mlflow-uri",
        help="the store to replay into (beats MLFLOW_TRACKING_URI); only records spooled for this store are replayed",
    )
    sync.add_argument("--from-uri", help="replay the records spooled for this other store instead (one gone for good)")
    args = parser.parse_args(argv)

    from harness.tracking.store import disable_mlflow_telemetry, resolve_uri

    disable_mlflow_telemetry()

    if args.command == "sync":
        sys.exit(_sync(resolve_uri(args.mlflow_uri), args.spool, args.from_uri))
    out = args.out or Path("reports") / args.experiment
    if args.command == "history":
        from harness.analysis.history import write_history

        png, md = write_history(resolve_uri(args.mlflow_uri), args.experiment, out, tuple(args.metric or COMPARED))
        print(f"wrote {png} and {md}")
        return
    from harness.analysis.report import build_report

    path = build_report(resolve_uri(args.mlflow_uri), args.experiment, out, args.parent, args.filter, args.all_sessions)
    print(f"wrote {path} and {path.with_suffix('.html')} (with the figures in {path.parent})")


def _sync(uri: str, spool_dir: str | None, from_uri: str | None) -> int:
    """Exit status 0 when nothing that could be replayed was left behind."""
    from harness.analysis.summary import parent_metrics_of_runs
    from harness.tracking import spool

    where = spool.resolve_spool(spool_dir)
    if not where.is_dir():
        print(f"no spool at {where}: nothing to replay")
        return 0
    result = spool.replay(where, uri, parent_metrics_of_runs, from_uri=from_uri)
    lines = result.lines(where, uri) or [f"nothing to replay in {where} for {spool.without_credentials(uri)}"]
    print("\n".join(lines))
    return 1 if result.unreachable or result.problems else 0


if __name__ == "__main__":
    main()
