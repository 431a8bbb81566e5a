"""The smoke study's thresholds gate real regressions: a learner that stops learning, or one
that returns transposed graphs, fails them."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, outcome, run_pytest

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


def smoke_with(learner: str, thresholds_of: str, settings: dict) -> dict:
    study = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    study["name"] = f"gate_{learner}_vs_{thresholds_of}"
    study["marks"] = []
    study["learners"] = {learner: settings}
    if learner == "random":  # it takes none of the shared DiBS settings
        del study["inference"]
    study["thresholds"] = {learner: study["thresholds"][thresholds_of]}
    return study


def test_chance_level_learner_fails_every_smoke_case(write_study, tmp_path):
    # one session, the random learner held to each learner's thresholds in turn (a study each)
    paths = [
        write_study(smoke_with("random", reference, {"n_particles": 10}), name=f"{reference}.yaml")
        for reference in ("svgd", "ensemble")
    ]
    proc = run_pytest([arg for path in paths for arg in ("--configs", str(path))], tmp_path)
    assert proc.returncode == 1
    assert outcome(proc.stdout)["failed"] == 10, proc.stdout[-2000:]
    for reference, max_eshd in (("svgd", "6.0"), ("ensemble", "6.5")):
        for seed in range(5):
            assert f"gate_random_vs_{reference}-s{seed}-random" in proc.stdout
        assert re.search(rf"eshd = [\d.]+ is above its max {max_eshd}", proc.stdout), proc.stdout[-2000:]


def test_svgd_returning_transposed_graphs_fails_on_auroc(write_study, tmp_path):
    path = write_study(smoke_with("transposed_svgd", "svgd", {"n_particles": 10}))
    # 300 of the 1000 steps: the smoke learners have converged by 250 steps (docs/regression-gate.md: a quarter of the steps gives the same numbers within noise), and it is 3x cheaper
    # one process: it compiles the learner once (two xdist workers would compile it twice)
    proc = run_pytest(["--configs", str(path), "--override", "inference.steps=300"], tmp_path)
    assert proc.returncode == 1
    assert outcome(proc.stdout)["failed"] == 5, proc.stdout[-2000:]
    assert "auroc = " in proc.stdout and "is below its min 0.7" in proc.stdout
