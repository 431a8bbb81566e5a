"""The smoke study's baseline gate catches real regressions: learners degraded behind the study's
back (tests/broken/degraded.py; same case ids and config hashes) fail the committed baseline
benchmarks/baselines/smoke.yaml, naming the metric. The unchanged code passing it is CI's own
`pytest benchmarks -m smoke -n 2 --baseline ...`; scripts/gate_trials.py measures both sides."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, run_pytest

BASELINE = ROOT / "benchmarks" / "baselines" / "smoke.yaml"
DEGRADED = "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"


@pytest.mark.parametrize("degrade, caught", [
    # a tenth of the steps (100 of 1000): both learners' eshd
    ("steps*0.1", [("svgd", "eshd"), ("ensemble", "eshd")]),
    # a third of the ensemble's members, and an SVGD kernel 100x too wide (almost no repulsion)
    ("n_members*0.3,h_latent*100", [("ensemble", "auroc"), ("svgd", "negll_obs")]),
])
def test_a_degraded_learner_fails_the_smoke_baseline(tmp_path, degrade, caught):
    proc = run_pytest(["-m", "smoke", "-n", "2", "--baseline", str(BASELINE)], tmp_path,
                      env={"HARNESS_LEARNERS": DEGRADED, "HARNESS_DEGRADE": degrade})
    assert proc.returncode == 1, proc.stdout[-3000:]
    flagged = set(re.findall(r"^REGRESSION: smoke (\w+) (\w+): ", proc.stdout, re.M))
    assert set(caught) <= flagged, proc.stdout[-4000:]
    assert "the regression gate fails this session (exit status 1)" in proc.stdout
