"""Headline figures of a paper-scale session, for the README and docs/results/: per graph type and
learner, the metrics in both weightings, the edge count against the true graphs', the cyclic
particles, AUROC with the diagonal minus without, the wall time per case, and the convergence
curves averaged over seeds (steps at ``inference.eval_every``).

    python scripts/paper_run_summary.py --mlflow-uri sqlite:///PATH/mlflow.db [--experiment dibs_vs_ensembles]

Reads the latest session's finished case runs (the true edge count is each run's ``truth_edges`` tag).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

METRICS = (
    "eshd",
    "eshd_mixture",
    "auroc",
    "auroc_mixture",
    "auprc",
    "auprc_mixture",
    "n_edges",
    "n_edges_mixture",
    "n_cyclic",
    "negll_obs",
    "negll_obs_mixture",
    "negll_intrv",
    "negll_intrv_mixture",
)
CURVES = ("eshd", "auroc", "n_edges", "n_cyclic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlflow-uri", required=True)
    ap.add_argument("--experiment", default="dibs_vs_ensembles")
    args = ap.parse_args()
    import mlflow

    client = mlflow.MlflowClient(args.mlflow_uri)
    exp = client.get_experiment_by_name(args.experiment)
    sessions = client.search_runs(
        [exp.experiment_id], "tags.mlflow.runName LIKE 'session-%'", order_by=["start_time DESC"]
    )
    parent = sessions[0].info.run_id
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000)
        if r.info.status == "FINISHED"
    ]
    groups = defaultdict(list)
    for run in runs:  # by study and sweep point: the case id without "-s<seed>-<learner>"
        tags = run.data.tags
        point = tags["case_id"].removesuffix(f"-s{tags['seed']}-{tags['learner']}")
        groups[(point, tags["learner"])].append(run)
    print(f"session {sessions[0].data.tags.get('mlflow.runName')} ({parent}), {len(runs)} finished cases\n")
    for (config, learner), members in sorted(groups.items()):
        m = lambda k: np.array([r.data.metrics.get(k, np.nan) for r in members])  # noqa: B023 - called at once, within the iteration
        edges = np.array([int(r.data.tags["truth_edges"]) for r in members])
        print(f"{config} {learner}: {len(members)} seeds")
        for k in METRICS:
            print(f"   {k:22s} {np.nanmean(m(k)):10.3f} ± {np.nanstd(m(k), ddof=1):.3f}")
        print(f"   {'true edges':22s} {edges.mean():10.3f} ± {edges.std(ddof=1):.3f}")
        offset = m("auroc_diag") - m("auroc")
        print(
            f"   auroc_diag − auroc      {offset.mean():+.4f} (range {offset.min():+.4f} to {offset.max():+.4f}); "
            f"mixture {np.nanmean(m('auroc_diag_mixture') - m('auroc_mixture')):+.4f}"
        )
        wall = np.array([(r.info.end_time - r.info.start_time) / 1e3 for r in members])
        print(
            f"   wall per case           {wall.mean():.0f} s (range {wall.min():.0f}-{wall.max():.0f}); "
            f"fit {m('fit_s').mean():.0f} s"
        )
        curves = defaultdict(lambda: defaultdict(list))
        for r in members:
            for k in CURVES:
                for point in client.get_metric_history(r.info.run_id, k):
                    curves[k][point.step].append(point.value)
        steps = sorted(curves["eshd"])
        if len(steps) > 1:
            print("   curve (mean over seeds) step: " + " ".join(f"{s:>6d}" for s in steps))
            for k in CURVES:
                print(f"   {k:>29s}: " + " ".join(f"{np.mean(curves[k][s]):6.2f}" for s in steps))
        print()


if __name__ == "__main__":
    main()
