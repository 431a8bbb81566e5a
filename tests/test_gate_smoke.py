"""The smoke study's baseline gate catches real regressions: learners degraded behind the study's
back (tests/broken/degraded.py; same case ids and config hashes) fail the committed baseline
benchmarks/baselines/smoke.yaml, naming the metric. The unchanged code passing it is CI's own
`pytest benchmarks -m smoke -n 2 --baseline ...`; scripts/gate_trials.py measures both sides."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, run_pytest

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


BASELINE = ROOT / "benchmarks" / "baselines" / "smoke.yaml"
DEGRADED = "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"


def test_degraded_learners_fail_the_smoke_baseline(tmp_path):
    # one session, both learners stopped after a tenth of their steps (100 of 1000): the cheapest
    # real regression (CI time); subtler ones (half the steps, a third of the particles or members)
    # are scripts/gate_trials.py's detection figures
    caught = [("svgd", "eshd"), ("ensemble", "auroc")]
    # in one process (CI's session uses -n 2: the degraded numbers are far outside either's noise)
    # the smoke study only (the baseline also holds exact_smoke's cases, which this test leaves out)
    proc = run_pytest(
        ["--configs", str(ROOT / "configs" / "smoke.yaml"), "--baseline", str(BASELINE)],
        tmp_path,
        env={"HARNESS_LEARNERS": DEGRADED, "HARNESS_DEGRADE": "svgd:steps*0.1,ensemble:steps*0.1"},
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    flagged = set(re.findall(r"^REGRESSION: smoke (\w+) (\w+): ", proc.stdout, re.M))
    assert set(caught) <= flagged, proc.stdout[-4000:]
    assert "the regression gate fails this session (exit status 1)" in proc.stdout
