"""The report: built from a real store of a tiny study; every file; numbers equal the runs'; no pickle."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness.analysis.compare import paired_comparisons
from harness.tracking.records import CaseRecord
from harness.tracking.store import sqlite_uri
from tests.conftest import ROOT, TINY, built_once, run_pytest

AUDIT = """
import sys
events = []
sys.addaudithook(lambda event, args: event.startswith("pickle") and events.append(event))
from harness.cli import main
main(sys.argv[1:])
assert not events, events
print("NO_PICKLE")
"""


@pytest.fixture(scope="session")
def store(tmp_path_factory, worker_id):
    """A store of three seeds of svgd and ensemble, built by one pytest session for all these tests."""
    return built_once(tmp_path_factory, worker_id, "report_store", build_store)


def build_store(tmp: Path) -> None:
    study = copy.deepcopy(TINY)
    study.update(
        name="rep",
        experiment="report_exp",
        seeds=[0, 1, 2],
        inference={"steps": 30, "n_grad_mc_samples": 8, "eval_every": 10},
        learners={"svgd": {"n_particles": 3}, "ensemble": {"n_members": 3}},
    )
    path = tmp / "rep.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = run_pytest(["--configs", str(path)], tmp)  # one process: each learner compiles once
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.integration
def test_report_writes_every_file_without_unpickling(store, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT, "report", "--experiment", "report_exp", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"MLFLOW_TRACKING_URI": sqlite_uri(store / "mlflow.db"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0 and "NO_PICKLE" in proc.stdout, proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "report.html",
            "report.md",
            "rep_convergence.png",
            "rep_edges.png",
            "rep_metrics.png",
            "rep_roc.png",
            "history.png",
        ]
    )
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and '.png"' not in html  # self-contained
    md = (out / "report.md").read_text()
    assert md.count("![rep_") == 4 and "svgd lower eshd than ensemble in" in md
    assert "## History (every session of the experiment)" in md and "![history](history.png)" in md


@pytest.mark.integration
def test_report_numbers_equal_the_runs(store, tmp_path):
    from harness.analysis.report import build_report

    md = build_report(sqlite_uri(store / "mlflow.db"), "report_exp", tmp_path / "r").read_text()
    client = MlflowClient(sqlite_uri(store / "mlflow.db"))
    exp = client.get_experiment_by_name("report_exp")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "case_id" in r.data.tags]
    for learner in ("svgd", "ensemble"):
        for metric in ("eshd", "auroc", "negll_obs"):
            vals = np.array([r.data.metrics[metric] for r in runs if r.data.tags["learner"] == learner])
            cell = f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}"
            row = next(line for line in md.splitlines() if line.startswith(f"| {learner} "))
            assert cell in row, (learner, metric, cell, row)
    records = [
        CaseRecord(
            case_id=r.data.tags["case_id"],
            learner=r.data.tags["learner"],
            seed=int(r.data.tags["seed"]),
            metrics=r.data.metrics,
        )
        for r in runs
    ]
    eshd = next(p for p in paired_comparisons(records) if p.metric == "eshd")
    assert eshd.n == 3 and eshd.statement in md


@pytest.mark.integration
def test_the_parent_run_holds_the_paired_comparison(store):
    client = MlflowClient(sqlite_uri(store / "mlflow.db"))
    exp = client.get_experiment_by_name("report_exp")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("harness.role") == "session"]
    assert parent.data.metrics["paired.rep.svgd-ensemble.eshd.n_pairs"] == 3
    assert "paired.rep.svgd-ensemble.auroc.diff_mean" in parent.data.metrics


@pytest.mark.integration
def test_report_selects_runs_by_parent_and_filter(store, tmp_path, monkeypatch):
    from harness.analysis.report import fetch_cases
    from harness.cli import main
    from harness.tracking.tags import PARENT_TAG

    uri = sqlite_uri(store / "mlflow.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("report_exp")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("harness.role") == "session"]
    parent_id = parent.info.run_id
    main(
        [
            "report",
            "--experiment",
            "report_exp",
            "--mlflow-uri",
            uri,
            "--out",
            str(tmp_path / "r"),
            "--parent",
            parent_id,
            "--filter",
            "tags.learner = 'svgd'",
        ]
    )
    md = (tmp_path / "r" / "report.md").read_text()
    assert (
        f"3 finished case runs of session `{parent.info.run_name}` (parent run `{parent_id}`) "
        "matching `tags.learner = 'svgd'`"
    ) in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| svgd ") for line in rows) and not any(line.startswith("| ensemble ") for line in rows)
    # the parent is a selection, not a label: another session's id selects nothing of this one
    assert len(fetch_cases(client, "report_exp", parent=parent_id)) == 6
    assert fetch_cases(client, "report_exp", parent="0" * 32) == []
    assert {c.seed for c in fetch_cases(client, "report_exp", filter_string="tags.seed = '2'")} == {2}
    assert all(
        r.data.tags[PARENT_TAG] == parent_id
        for r in client.search_runs([exp.experiment_id])
        if "case_id" in r.data.tags
    )


class _WritesAFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_report_never_unpickles_a_runs_particles(tmp_path):
    """A particles.npz holding a pickled object (here: one that creates a file when unpickled) is
    refused by the report's reader, and the object is never unpickled."""
    from harness.analysis.report import CaseData, _read_artifacts

    marker = tmp_path / "unpickled"
    npz = tmp_path / "particles.npz"
    np.savez(
        npz,
        z=np.zeros((1, 2, 2, 2)),
        g=np.array([_WritesAFileWhenUnpickled(marker)], dtype=object),
        log_weights=np.zeros(1),
    )
    (tmp_path / "ground_truth.yaml").write_text("g: [[0, 1], [0, 0]]\n")
    client = MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    run = client.create_run(client.create_experiment("pickle_exp", artifact_location=str(tmp_path / "artifacts")))
    client.log_artifact(run.info.run_id, str(npz))
    client.log_artifact(run.info.run_id, str(tmp_path / "ground_truth.yaml"))
    case = CaseData(case_id="c", config="c", learner="svgd", seed=0, run_id=run.info.run_id, metrics={})
    with pytest.raises(ValueError, match="allow_pickle=False"):
        _read_artifacts(client, case, tmp_path / "download")
    assert not marker.exists()


@pytest.mark.integration
def test_an_exact_posterior_study_records_what_recomputes_its_metrics_and_reports_them(tmp_path):
    """A real session of an exact-posterior study (the random and exact learners: nothing to
    compile): every case run has ``exact_posterior.npz``, from which (with ``particles.npz``)
    ``edge_mae``, ``graph_tv`` and ``graph_kl`` are recomputed by hand here; the report draws each
    learner's marginals against the exact ones and lists the exact posterior's own scores."""
    from scipy.special import logsumexp

    from harness.analysis.report import build_report
    from harness.evaluation.metrics import off_diagonal
    from harness.models.graphs import is_cyclic, parent_masks

    study = copy.deepcopy(TINY)
    study.update(
        name="ex",
        experiment="exact_exp",
        seeds=[0, 1],
        learners={"random": {"n_particles": 6}, "exact": {"n_particles": 6}},
    )
    study["data"]["exact_posterior"] = True
    path = tmp_path / "ex.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = run_pytest(["--configs", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    uri = sqlite_uri(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("exact_exp").experiment_id])
        if "case_id" in r.data.tags
    ]
    assert len(runs) == 4
    per_edge: dict[str, list[np.ndarray]] = {}
    for run in runs:
        where = tmp_path / run.info.run_id
        where.mkdir()
        with np.load(
            client.download_artifacts(run.info.run_id, "exact_posterior.npz", str(where)), allow_pickle=False
        ) as npz:
            exact_marginals, log_p = npz["edge_marginals"], npz["particle_log_posterior"]
            assert np.isfinite(float(npz["log_normalizer"]))
        with np.load(
            client.download_artifacts(run.info.run_id, "particles.npz", str(where)), allow_pickle=False
        ) as npz:
            g, lw = npz["g"], npz["log_weights"]
        acyclic = ~is_cyclic(g)
        assert np.all(np.isneginf(log_p[~acyclic])) and np.all(np.isfinite(log_p[acyclic]))
        g, lw, log_p = g[acyclic], lw[acyclic] - logsumexp(lw[acyclic]), log_p[acyclic]
        q, p = {}, {}
        for mask, w, lp in zip(map(tuple, parent_masks(g)), np.exp(lw), log_p):
            q[mask] = q.get(mask, 0.0) + w
            p[mask] = np.exp(lp)
        metrics = run.data.metrics
        learner = np.einsum("m,mij->ij", np.exp(lw), g)
        assert metrics["edge_mae"] == pytest.approx(np.abs(off_diagonal(learner - exact_marginals)).mean())
        tv = 0.5 * (sum(abs(q[k] - p[k]) for k in q) + 1 - sum(p.values()))
        assert metrics["graph_tv"] == pytest.approx(tv)
        assert metrics["graph_kl"] == pytest.approx(sum(q[k] * np.log(q[k] / p[k]) for k in q))
        assert {"exact_eshd", "edge_mae_mixture", "graph_tv_mixture", "graph_kl_mixture"} <= set(metrics)
        name = run.data.tags["learner"]
        per_edge.setdefault("exact posterior", []).append(exact_marginals)  # each seed once per learner
        per_edge.setdefault(name, []).append(learner)
        with np.load(where / "particles.npz", allow_pickle=False) as npz:
            lw_mixture = npz["log_weights_mixture"][acyclic]
        per_edge.setdefault(f"{name}+", []).append(
            np.einsum("m,mij->ij", np.exp(lw_mixture - logsumexp(lw_mixture)), g)
        )
    md = build_report(uri, "exact_exp", tmp_path / "report").read_text()
    assert "![ex_exact](ex_exact.png)" in md and (tmp_path / "report" / "ex_exact.png").is_file()
    header = next(line for line in md.splitlines() if line.startswith("| learner "))
    assert "edge_mae" in header and "exact_eshd" in header
    # the edge-marginal table (Table 2's form): means over seeds of what the artifacts hold
    lines = md.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("| edge "))
    columns = [c.strip() for c in lines[top].strip("|").split("|")]
    assert columns == ["edge", "in G*", "exact posterior", "exact", "exact+", "random", "random+"]
    d = exact_marginals.shape[0]
    for line in lines[top + 2 : top + 2 + d * (d - 1)]:
        row = [c.strip() for c in line.strip("|").split("|")]
        i, j = (int(node.removeprefix("X")) for node in row[0].split(" → "))
        for name, value in zip(columns[2:], row[2:]):
            assert float(value) == pytest.approx(np.mean([m[i, j] for m in per_edge[name]]), abs=6e-4), (row, name)


@pytest.mark.integration
def test_the_console_script_runs_the_same_commands(store, tmp_path):
    """``dibs-bench`` (pyproject's console script) is ``python -m harness``."""
    script = Path(sys.executable).parent / "dibs-bench"
    env = {"MLFLOW_TRACKING_URI": sqlite_uri(store / "mlflow.db"), "PATH": "/usr/bin:/bin"}
    for command in (
        ["report", "--experiment", "report_exp", "--out", str(tmp_path / "r")],
        ["history", "--experiment", "report_exp", "--out", str(tmp_path / "h")],
    ):
        proc = subprocess.run([str(script), *command], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "r" / "report.md").is_file() and (tmp_path / "h" / "history.png").is_file()
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True).stdout
    assert usage.startswith("usage: dibs-bench")
