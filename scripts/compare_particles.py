"""Particles after a short run, this checkout against an earlier commit: is a faster step the same function?

    python scripts/compare_particles.py REV [--steps 50]

Runs svgd and ensemble for ``--steps`` steps on the first case of the smoke study and of the
paper's linear study, in this checkout and in a git worktree of REV, in float32 (the default) and in
float64 (``inference.dtype``), and prints the largest particle differences. In float64 a
rewritten computation of the same function agrees to ~1e-13; in float32 it moves by rounding, which
the table sets against the difference between the fused likelihoods and dibs-lib's own classes
(``likelihood_impl: dibs``) at REV, the rounding the harness already accepts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [("configs/smoke.yaml", "smoke-s0"), ("configs/dibs_vs_ensemble_linear.yaml", "paper_linear-er-s0")]

FIT = r"""
import sys, numpy as np
precision, impl, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import jax
if precision == "float64":
    jax.config.update("jax_enable_x64", True)
from harness import load_study
from harness.data import make_dataset
from harness.data.dataset import with_dtype
from harness.execution.jax_setup import configure_jax
from harness.learners import _dibs
configure_jax()
result = {}
for study, prefix in CASES:
    for case in load_study(study):
        if not case.id.startswith(prefix + "-") or case.learner not in ("svgd", "ensemble"):
            continue
        cfg = case.config
        dataset = with_dtype(make_dataset(cfg["data"], seed=case.seed), precision)
        settings = dict(cfg["learners"][case.learner], likelihood_impl=impl)
        problem = _dibs.Problem.build(cfg["data"], settings, dataset.n_vars)
        n = settings.get("n_particles") or settings.get("n_members")
        fit = _dibs.fit_svgd if case.learner == "svgd" else _dibs.fit_ensemble
        post = fit(problem, n, steps, dataset, jax.random.PRNGKey(case.seed))
        result[case.id + " z"] = post.z
        result[case.id + " theta"] = np.concatenate([np.ravel(l) for l in jax.tree_util.tree_leaves(post.theta)])
np.savez(out, **result)
"""


def fit(tree: Path, precision: str, impl: str, steps: int, out: Path) -> dict:
    code = f"CASES = {CASES!r}\n" + FIT
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HARNESS_JAX_CACHE": "off", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code, precision, impl, str(steps), str(out)], cwd=tree, env=env, check=True)
    return dict(np.load(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        ref_tree = tmp / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(ref_tree), args.rev], cwd=ROOT, check=True)
        try:
            runs = {
                "new32": fit(ROOT, "float32", "fused", args.steps, tmp / "new32.npz"),
                "old32": fit(ref_tree, "float32", "fused", args.steps, tmp / "old32.npz"),
                "dibs32": fit(ref_tree, "float32", "dibs", args.steps, tmp / "dibs32.npz"),
                "new64": fit(ROOT, "float64", "fused", args.steps, tmp / "new64.npz"),
                "old64": fit(ref_tree, "float64", "fused", args.steps, tmp / "old64.npz"),
            }
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT, check=False)
    diff = lambda a, b, k: np.abs(runs[a][k] - runs[b][k]).max()
    print(f"max |difference| of the particles after {args.steps} steps, this checkout vs {args.rev}")
    print(f"{'':36s} {'float32':>10s} {'float64':>10s} {'fused vs dibs at ' + args.rev:>26s}")
    for key in runs["new32"]:
        print(
            f"{key:36s} {diff('new32', 'old32', key):10.2e} {diff('new64', 'old64', key):10.2e} "
            f"{diff('old32', 'dibs32', key):26.2e}"
        )


if __name__ == "__main__":
    main()
