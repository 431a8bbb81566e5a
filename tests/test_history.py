"""The history view: every session of an experiment, in time order, read back from a real store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image

from harness.tracking.store import sqlite_uri
from tests.conftest import ROOT, TINY, run_pytest

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm


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
    learners = {"HARNESS_LEARNERS": "svgd=harness.learners.random"}
    study = {**TINY, "seeds": [0, 1, 2], "learners": {"random": {"n_particles": 5}, "svgd": {"n_particles": 3}}}
    path = write_study(study)
    for extra in ([], ["-k", "random", "--override", "data.n_observations=40"]):
        assert run_pytest(["--configs", str(path), *extra], tmp_path, env=learners).returncode == 0
    out = tmp_path / "hist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "history",
            "--experiment",
            "dibs_vs_ensembles",
            "--metric",
            "eshd",
            "--metric",
            "auroc",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "MLFLOW_TRACKING_URI": sqlite_uri(tmp_path / "mlflow.db"),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
        },
    )
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

    # the report reads the latest session by default and says so; with every session it never
    # pairs runs of the full study with those of the shortened one (another comparison hash)
    from harness.analysis.report import build_report

    uri = sqlite_uri(tmp_path / "mlflow.db")
    latest = build_report(uri, "dibs_vs_ensembles", tmp_path / "latest").read_text()
    assert f"3 finished case runs of session `{sessions[-1]}`" in latest and "the latest; `--all-sessions`" in latest
    assert "Paired comparison:" not in latest.splitlines()  # that session ran one learner
    every = build_report(uri, "dibs_vs_ensembles", tmp_path / "every", all_sessions=True).read_text()
    assert "9 finished case runs of every session of the experiment" in every
    sections = [line[3:] for line in every.splitlines() if line.startswith("## tiny")]
    assert len(sections) == 2 and all(s.startswith("tiny (") for s in sections)
    # the one paired comparison: the full study's svgd against its own random runs, not the
    # shortened session's, which would replace them if mixed (random DAGs ignore the data, but
    # their DiBS+ weights are the training data's likelihood: other data, other values)
    assert every.splitlines().count("Paired comparison:") == 1
    from mlflow.tracking import MlflowClient

    from harness.analysis.compare import paired_comparisons
    from harness.tracking.records import CaseRecord

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("dibs_vs_ensembles").experiment_id])
    parent_of = {r.info.run_id: r.info.run_name for r in runs if r.data.tags.get("harness.role") == "session"}
    records = {
        name: [
            CaseRecord(
                case_id=r.data.tags["case_id"],
                learner=r.data.tags["learner"],
                seed=int(r.data.tags["seed"]),
                metrics=r.data.metrics,
            )
            for r in runs
            if parent_of.get(r.data.tags.get("mlflow.parentRunId")) == name
        ]
        for name in sessions
    }

    def negll_statement(recs):
        return next(p for p in paired_comparisons(recs) if p.metric == "negll_obs_mixture").statement

    own = negll_statement(records[sessions[0]])
    mixed = negll_statement([r for r in records[sessions[0]] if r.learner == "svgd"] + records[sessions[-1]])
    assert own in every and mixed != own
