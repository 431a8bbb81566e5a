"""The regression gate end to end: sessions run as a user runs them, gated on a baseline file and on
earlier sessions in MLflow; degraded learners (tests/broken/degraded.py) keep the real case ids and
config hashes, so only the code differs from the baseline."""

from __future__ import annotations

import re
import sqlite3

import pytest
import yaml

from tests.conftest import ROOT, outcome, run_pytest, tiny_study

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


GATE = {
    "name": "gate",
    "seeds": [0, 1, 2, 3, 4],
    "data": {
        "graph": {"type": "er", "n_vars": 4, "edges_per_node": 1},
        "model": {"type": "linear_gaussian"},
        "n_observations": 50,
        "n_ho_observations": 50,
        "interventions": {"n_sets": 1},
    },
    "inference": {"steps": 150, "n_grad_mc_samples": 8, "n_acyclicity_mc_samples": 4},
    "learners": {"svgd": {"n_particles": 4}},
}
DEGRADED = {"HARNESS_LEARNERS": "svgd=tests.broken.degraded_svgd,ensemble=tests.broken.degraded_ensemble"}


def parent_runs(tmp_path) -> list[tuple[str, str]]:
    """(run id, baseline tag) of each session's parent run, oldest first."""
    with sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "select r.run_uuid, (select value from tags t where t.run_uuid = r.run_uuid and t.key = 'harness.baseline') "
            "from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'harness.role' order by r.start_time"
        ).fetchall()
    db.close()
    return rows


def test_a_session_is_gated_on_a_file_and_on_earlier_sessions(write_study, tmp_path):
    study = write_study(GATE)
    base = tmp_path / "baselines" / "gate.yaml"
    first = run_pytest(["--configs", str(study), "--save-baseline", str(base)], tmp_path)
    assert first.returncode == 0, first.stdout[-2000:]
    saved = yaml.safe_load(base.read_text())
    assert sorted(saved["cases"]) == [f"gate-s{s}-svgd" for s in range(5)]

    # the same code, gated on the session before it; thresholds and effect sizes changed, which are
    # not part of the config hash: still comparable, and the study's effect size is used
    rebound = write_study(
        {**GATE, "thresholds": {"svgd": {"eshd": {"max": 20}}}, "regression": {"eshd": 1.0}}, name="rebound.yaml"
    )
    same = run_pytest(["--configs", str(rebound), "--baseline", "mlflow:latest"], tmp_path)
    assert same.returncode == 0, same.stdout[-3000:]
    assert (
        "0 regression(s) in 10 comparison(s)" in same.stdout and "min effect 1;" in same.stdout
    )  # 5 metrics, 2 weightings
    (first_id, _), (second_id, tag) = parent_runs(tmp_path)
    assert tag == f"mlflow:{first_id}"

    # a learner that runs 3 of its 150 steps is caught
    worse = run_pytest(
        ["--configs", str(study), "--baseline", str(base)], tmp_path, env={**DEGRADED, "HARNESS_DEGRADE": "steps*0.02"}
    )
    assert worse.returncode == 1, worse.stdout[-3000:]
    assert outcome(worse.stdout)["passed"] == 5  # every case met its (absent) thresholds: the gate failed the session
    assert re.search(
        r"^REGRESSION: gate svgd eshd: baseline [\d.]+, now [\d.]+, paired diff \+[\d.]+ "
        r"\(95% CI .*\), p=[\d.e-]+ \(paired t\) / [\d.e-]+ \(sign-flip\), one-sided, n=5, min effect 0.5; "
        r"worse in seeds: ",
        worse.stdout,
        re.M,
    ), worse.stdout[-3000:]
    assert "the regression gate fails this session (exit status 1)" in worse.stdout

    # a changed study is not compared with an explicit session, and a gate that compared nothing fails
    changed = run_pytest(
        ["--configs", str(study), "--baseline", f"mlflow:{second_id}", "--override", "inference.steps=20"], tmp_path
    )
    assert changed.returncode == 1, changed.stdout[-3000:]
    assert f"baseline: mlflow:{second_id} " in changed.stdout
    assert re.search(r"^not comparable: gate-s0-svgd: config hash \w+ \(baseline \w+\)", changed.stdout, re.M)
    assert "the gate compared nothing" in changed.stdout


def test_an_unusable_baseline_is_refused_before_any_case_runs(tmp_path):
    proc = run_pytest(["-m", "smoke", "--baseline", str(tmp_path / "nope.yaml")], tmp_path)
    assert proc.returncode == 4  # pytest's usage error
    assert f"{tmp_path / 'nope.yaml'}: cannot read the baseline file" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "two-workers"])
def test_a_gate_with_every_case_skipped_fails_saying_it_compared_nothing(write_study, tmp_path, workers):
    """A session whose cases are all skipped (here: a GPU study on a machine without one) cannot pass
    a baseline gate: it compared nothing."""
    study = tiny_study(requires=["gpu"])
    proc = run_pytest(
        [
            "--configs",
            str(write_study(study)),
            "--baseline",
            str(ROOT / "benchmarks" / "baselines" / "smoke.yaml"),
            *workers,
        ],
        tmp_path,
    )
    assert "2 skipped" in proc.stdout, proc.stdout[-3000:]
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "the gate compared nothing" in proc.stdout
