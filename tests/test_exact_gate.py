"""The exact_small study's edge_mae bounds fail a learner at chance level (the random learner held
to svgd's and ensemble's bounds), as its calibration table says."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, run_pytest

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


def test_chance_level_learner_fails_the_exact_small_bounds(write_study, tmp_path):
    paths = []
    for reference in ("svgd", "ensemble"):
        study = yaml.safe_load((ROOT / "configs" / "exact_small.yaml").read_text())
        study.update(name=f"exact_random_vs_{reference}", experiment="exact_gate",
                     learners={"random": {"n_particles": 10}},
                     thresholds={"random": study["thresholds"][reference]})
        del study["inference"]  # the random learner takes none of the DiBS settings
        paths.append(write_study(study, name=f"{reference}.yaml"))
    proc = run_pytest([arg for path in paths for arg in ("--configs", str(path))], tmp_path)
    assert proc.returncode == 1
    # the calibration table of configs/exact_small.yaml: 6 of 40 above 0.39, 1 of 40 above 0.42
    assert "7 failed, 73 passed" in proc.stdout, proc.stdout[-3000:]
    assert len(re.findall(r"exact_random_vs_svgd-\S+-random.*edge_mae = [\d.]+ is above its max 0.39", proc.stdout)) >= 6
    assert re.search(r"edge_mae = [\d.]+ is above its max 0.42", proc.stdout), proc.stdout[-3000:]
