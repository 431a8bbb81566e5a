"""The smoke study's svgd fit (1000 steps) at several commits, side by side on one machine.

    python scripts/smoke_fit_by_commit.py REV [REV ...] [--n-vars D] [--rounds 2]

For each commit: a git worktree, and a fresh process running that commit's own harness
(``harness.run_case``, the API since the first commit) on that commit's ``configs/smoke.yaml``, cut
to svgd and seeds 0-1; the figure is seed 1's ``fit_s`` (its loop compiled by seed 0's case, so
this is the 1000 steps alone). Processes alternate between commits, round by round (this machine is
noisy). ``--n-vars`` sets the graph size for every commit: the smoke study grew from d = 5 to
d = 6 in a191474, so its own file alone does not compare like with like. All commits run in this
checkout's virtual environment (the pins have not changed since the first commit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, tempfile
from pathlib import Path
import yaml
from harness import load_study, run_case
study = yaml.safe_load(Path("configs/smoke.yaml").read_text())
study["seeds"] = [0, 1]
study["learners"] = {"svgd": study["learners"]["svgd"]}
study.pop("thresholds", None)
study.setdefault("inference", {})["steps"] = 1000
if sys.argv[1] != "own":
    study["data"]["graph"]["n_vars"] = int(sys.argv[1])
path = Path(tempfile.mkdtemp()) / "probe.yaml"
path.write_text(yaml.safe_dump(study))
fits = {case.seed: run_case(case, setup_jax=True).metrics["fit_s"] for case in sorted(load_study(str(path)), key=lambda c: c.seed)}
print("RESULT", json.dumps({"fit_s": fits[1], "n_vars": study["data"]["graph"]["n_vars"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+")
    ap.add_argument("--n-vars", type=int, default=None, help="graph size for every commit (default: each commit's own)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        try:
            for rev in args.revs:
                trees[rev] = Path(tmp) / rev
                subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[rev]), rev], cwd=ROOT, check=True)
            fits = {rev: [] for rev in args.revs}
            for _ in range(args.rounds):
                for rev, tree in trees.items():
                    env = {
                        "PATH": "/usr/bin:/bin",
                        "HOME": str(Path.home()),
                        "PYTHONPATH": str(tree),
                        "HARNESS_JAX_CACHE": "off",
                    }
                    out = subprocess.run(
                        [sys.executable, "-c", PROBE, str(args.n_vars or "own")],
                        cwd=tree,
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    fits[rev].append(json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:]))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print(f"smoke svgd fit, 1000 steps, seed 1 (compiled), median of {args.rounds} processes per commit:")
    for rev, runs in fits.items():
        subject = subprocess.run(
            ["git", "log", "-1", "--format=%s", rev], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        each = ", ".join(f"{r['fit_s']:.2f}" for r in runs)
        print(
            f"   {rev:10s} d = {runs[0]['n_vars']}: {statistics.median(r['fit_s'] for r in runs):6.2f} s "
            f"({each})  {subject[:70]}"
        )


if __name__ == "__main__":
    main()
