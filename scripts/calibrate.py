"""Measure a study's metrics over many seeds, to set its regression thresholds.

    python scripts/calibrate.py configs/smoke.yaml --seeds 0-9 [--learners svgd ensemble random]

Prints, per learner and metric, the worst, mean and best value over the seeds (and each seed's).
"""

from __future__ import annotations

import argparse
import dataclasses

import pandas as pd

from harness import load_study, run_case


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--seeds", default="0-9", help="a-b (inclusive)")
    ap.add_argument("--learners", nargs="*")
    ap.add_argument("--set", nargs="*", default=[], help="learner-independent overrides KEY=VALUE on inference")
    args = ap.parse_args()
    a, b = map(int, args.seeds.split("-"))
    template = {c.learner: c for c in load_study(args.study)}
    rows = []
    for learner, case in template.items():
        if args.learners and learner not in args.learners:
            continue
        for seed in range(a, b + 1):
            c = dataclasses.replace(case, seed=seed, id=f"{case.study}-s{seed}-{learner}")
            r = run_case(c, setup_jax=True)
            rows.append({"learner": learner, "seed": seed, **r.metrics})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    cols = ["eshd", "auroc", "auprc", "negll_obs", "n_cyclic", "fit_s"]
    print(df.groupby("learner")[cols].agg(["min", "mean", "max"]).T.to_string())


if __name__ == "__main__":
    main()
