"""The Sachs protein-signalling data as `data: {dataset: sachs}` (needs the `sachs` extra)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.config import StudyFileError, load_study
from harness.data import make_dataset
from harness.datasets import load_sachs, standardize
from tests.conftest import ROOT, run_pytest

SACHS = {
    "name": "realdata",
    "seeds": [0],
    "data": {"dataset": "sachs", "model": {"type": "linear_gaussian"}, "n_observations": 200, "n_ho_observations": 100},
    "inference": {"steps": 10, "n_grad_mc_samples": 8},
    "learners": {"random": {"n_particles": 5}},
}


def test_sachs_data_consensus_graph_and_seeded_split(write_study):
    case = load_study(write_study(SACHS))[0]
    assert case.config["data"]["graph"] == {"type": "er", "n_vars": 11, "edges_per_node": 1.0}
    a, b, c = (make_dataset(case.config["data"], s) for s in (0, 0, 1))
    assert a.nodes[:3] == ["praf", "pmek", "plcg"] and len(a.nodes) == 11
    assert a.g.sum() == 18 and a.g[a.nodes.index("praf"), a.nodes.index("pmek")] == 1
    assert a.x.shape == (200, 11) and a.x_ho.shape == (100, 11)
    assert a.theta is None and a.interventions == []
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    # disjoint training and held-out samples, standardised columns
    rows = {tuple(r) for r in a.x}
    assert not rows & {tuple(r) for r in a.x_ho}
    full = standardize(load_sachs()[0])
    np.testing.assert_allclose(full.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(full.std(axis=0), 1)
    assert rows <= {tuple(r) for r in full.astype(np.float32)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"graph": {"n_vars": 12}}, "has 11 variables"),
        ({"interventions": {"n_sets": 2}}, "no interventional test sets"),
        ({"n_observations": 7000, "n_ho_observations": 1000}, "exceeds the 7466 samples"),
        ({"dataset": "sach"}, "'sachs'"),
    ],
)
def test_bad_real_data_settings_are_refused(write_study, change, message):
    study = {**SACHS, "data": {**SACHS["data"], **change}}
    with pytest.raises(StudyFileError, match=message):
        load_study(write_study(study))


def test_a_broken_cdt_install_is_named_at_collection(write_study, tmp_path):
    fake = tmp_path / "shadow" / "cdt"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    path = write_study(SACHS)
    code = f"from harness import load_study; load_study({str(path)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": f"{fake.parent}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert f"{path}: key 'data.dataset'" in out.stderr and "lacks" in out.stderr


def test_shortened_sachs_study_logs_graph_metrics_against_the_consensus(tmp_path):
    proc = run_pytest(["--configs", str(ROOT / "configs" / "sachs.yaml"), "--override", "inference.steps=10",
                       "-k", "sachs-linear_gaussian-s0-svgd"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dibs_vs_ensembles")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "sachs-linear_gaussian-s0-svgd"]
    assert run.info.status == "FINISHED"
    assert {"eshd", "auroc", "auprc", "negll_obs"} <= set(run.data.metrics)
    assert "negll_intrv" not in run.data.metrics
    assert "negll_intrv" in run.data.tags["metrics_not_logged"]
    assert run.data.params["data.dataset"] == "sachs"
