"""The smoke study's baseline gate catches real regressions: learners degraded behind the study's
back (tests/broken/degraded.py; same case ids and config hashes) fail the committed baseline
benchmarks/baselines/smoke.yaml, naming the metric. The unchanged code passing it is CI's own
`pytest benchmarks -m smoke -n 2 --baseline ...`; scripts/gate_trials.py measures both sides."""

from __future__ import annotations

import re

from tests.conftest import ROOT, run_pytest

BASELINE = ROOT / "benchmarks" / "baselines" / "smoke.yaml"
DEGRADED = "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"


def test_degraded_learners_fail_the_smoke_baseline(tmp_path):
    # one session, each learner broken its own way: svgd with a tenth of the steps (100 of 1000),
    # the ensemble with a third of its members
    caught = [("svgd", "eshd"), ("ensemble", "auroc")]
    proc = run_pytest(["-m", "smoke", "-n", "2", "--baseline", str(BASELINE)], tmp_path,
                      env={"HARNESS_LEARNERS": DEGRADED, "HARNESS_DEGRADE": "svgd:steps*0.1,ensemble:n_members*0.3"})
    assert proc.returncode == 1, proc.stdout[-3000:]
    flagged = set(re.findall(r"^REGRESSION: smoke (\w+) (\w+): ", proc.stdout, re.M))
    assert set(caught) <= flagged, proc.stdout[-4000:]
    assert "the regression gate fails this session (exit status 1)" in proc.stdout
