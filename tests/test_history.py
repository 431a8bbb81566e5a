"""The history view: every session of an experiment, in time order, read back from a real store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
from matplotlib import image

from tests.conftest import ROOT, TINY, run_pytest


def case_metrics(db_path) -> dict[str, dict[str, list[float]]]:
    """Per session name and learner, the eshd values of its finished cases (read with sqlite3)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "select p.name, l.value, m.value from runs c "
            "join tags pt on pt.run_uuid = c.run_uuid and pt.key = 'mlflow.parentRunId' "
            "join runs p on p.run_uuid = pt.value "
            "join tags l on l.run_uuid = c.run_uuid and l.key = 'learner' "
            "join latest_metrics m on m.run_uuid = c.run_uuid and m.key = 'eshd' where c.status = 'FINISHED'"
        ).fetchall()
    db.close()
    out: dict = {}
    for session, learner, value in rows:
        out.setdefault(session, {}).setdefault(learner, []).append(value)
    return out


def test_history_lists_every_session_in_time_order_with_its_means(write_study, tmp_path):
    # two cheap learners: random DAGs, and the same under another name (listed after it)
    learners = {"HARNESS_LEARNERS": "svgd=harness.learners.random_dags"}
    study = {**TINY, "seeds": [0, 1, 2], "learners": {"random": {"n_particles": 5}, "svgd": {"n_particles": 3}}}
    path = write_study(study)
    for extra in ([], ["-k", "random", "--override", "data.n_observations=40"]):
        assert run_pytest(["--configs", str(path), *extra], tmp_path, env=learners).returncode == 0
    out = tmp_path / "hist"
    proc = subprocess.run([sys.executable, "-m", "harness", "history", "--experiment", "dibs_vs_ensembles",
                           "--metric", "eshd", "--metric", "auroc", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True,
                          env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in (out / "history.md").read_text().splitlines() if r.startswith("| 20")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    # started, git_commit, session, config, learner, n, cases_hash, eshd, auroc
    assert [(c[4], c[5]) for c in cells] == [("svgd", "3"), ("random", "3"), ("random", "3")]
    sessions = [c[2] for c in cells]
    assert sessions == sorted(sessions) and len(set(sessions)) == 2  # time order (names carry the start time)
    expected = case_metrics(tmp_path / "mlflow.db")
    for c in cells:
        values = expected[c[2]][c[4]]
        sd = np.std(values, ddof=1)
        half = 4.302652729749464 * sd / np.sqrt(3)  # t(0.975, 2 df)
        assert c[7] == f"{np.mean(values):.4g} ({np.mean(values) - half:.3g} to {np.mean(values) + half:.3g})"
    assert cells[1][6] != cells[2][6]  # the override changed the study: another cases hash
    assert len(cells[0]) == 9  # only the metrics asked for
    picture = image.imread(out / "history.png")
    assert picture.shape[0] > 400 and picture.shape[1] > 700 and picture[..., :3].std() > 0.05
