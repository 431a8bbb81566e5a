"""The Sachs protein-signalling data as `data: {dataset: sachs}` (needs the `sachs` extra)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.data import make_dataset
from harness.data.real import load_sachs, standardize
from harness.models.graphs import is_cyclic
from harness.study.loading import StudyFileError, load_study
from harness.tracking.store import sqlite_uri
from tests.conftest import ROOT, run_pytest

SACHS = {
    "name": "realdata",
    "seeds": [0],
    "data": {"dataset": "sachs", "model": {"type": "linear_gaussian"}, "n_observations": 200, "n_ho_observations": 100},
    "learners": {"random": {"n_particles": 5}},
}


CONSENSUS = {  # the 17-edge consensus network in the usual protein names (bnlearn's sachs network)
    "Raf": ["Mek"],
    "Mek": ["Erk"],
    "Erk": ["Akt"],
    "PKA": ["Raf", "Mek", "Erk", "Akt", "P38", "Jnk"],
    "PKC": ["Raf", "Mek", "PKA", "P38", "Jnk"],
    "Plcg": ["PIP2", "PIP3"],
    "PIP3": ["PIP2"],
}
CDT_NAMES = {"Raf": "praf", "Mek": "pmek", "Erk": "p44/42", "Akt": "pakts473", "Jnk": "pjnk", "Plcg": "plcg"}


def test_sachs_data_consensus_graph_and_seeded_split(write_study):
    case = load_study(write_study(SACHS))[0]
    assert case.config["data"]["graph"] == {"type": "er", "n_vars": 11, "edges_per_node": 1.0}
    assert (case.config["data"]["truth"], case.config["data"]["standardize"]) == ("consensus", True)
    a, b, c = (make_dataset(case.config["data"], s) for s in (0, 0, 1))
    assert a.nodes[:3] == ["praf", "pmek", "plcg"] and len(a.nodes) == 11
    expected = np.zeros((11, 11), dtype=np.int32)
    for cause, effects in CONSENSUS.items():
        for effect in effects:
            expected[a.nodes.index(CDT_NAMES.get(cause, cause)), a.nodes.index(CDT_NAMES.get(effect, effect))] = 1
    np.testing.assert_array_equal(a.g, expected)
    assert a.g.sum() == 17 and not is_cyclic(a.g[None])[0]
    assert a.x.shape == (200, 11) and a.x_ho.shape == (100, 11)
    assert a.theta is None and a.interventions == []
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    # disjoint training and held-out rows of the raw data (the rows the data set says it took, checked
    # here, not re-drawn), scaled with the training rows' statistics only
    raw = load_sachs()[0]
    train, held_out = a.rows["training"], a.rows["held_out"]
    assert len(set(train)) == 200 and len(set(held_out)) == 100 and not set(train) & set(held_out)
    assert set(c.rows["training"]) != set(train)  # another seed, another split
    mean, sd = raw[train].mean(axis=0), raw[train].std(axis=0)
    np.testing.assert_allclose(a.x, (raw[train] - mean) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.x_ho, (raw[held_out] - mean) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(a.x.std(axis=0), 1, rtol=1e-5)
    assert np.abs(a.x_ho.mean(axis=0)).max() > 1e-3  # the held-out rows were not used for the scaling
    assert standardize(raw[held_out], reference=raw[train]) == pytest.approx((raw[held_out] - mean) / sd)


def test_the_papers_sachs_protocol_uses_every_row_for_every_seed_and_logs_no_held_out_metric():
    """configs/sachs_paper.yaml (dibs/eval/target.py of the paper's code): all 7466 rows,
    standardised with their own statistics, no held-out rows, cdt's graph, ER with 2 edges per node,
    the same data for every seed."""
    from harness import run_case
    from harness.evaluation.run_tags import metrics_not_logged

    cases = {
        c.seed: c
        for c in load_study(ROOT / "configs" / "sachs_paper.yaml", {"inference.steps": 2})
        if c.learner == "svgd"
    }
    assert sorted(cases) == list(range(30))
    data = cases[0].config["data"]
    assert (data["truth"], data["graph"]["edges_per_node"], data["n_observations"], data["n_ho_observations"]) == (
        "cdt",
        2.0,
        7466,
        0,
    )
    raw = load_sachs("cdt")[0]
    a, b = make_dataset(data, 0), make_dataset(data, 7)
    assert sorted(a.rows["training"]) == list(range(7466)) and len(a.x_ho) == 0
    np.testing.assert_array_equal(a.x, b.x)  # split_seed: only the learners' keys follow the seed
    np.testing.assert_allclose(np.sort(a.x, axis=0), np.sort((raw - raw.mean(0)) / raw.std(0), axis=0), atol=1e-5)
    result = run_case(cases[0])
    assert "negll_obs" not in result.metrics and "negll_intrv" not in result.metrics
    assert {"eshd", "auroc", "auroc_diag"} <= set(result.metrics)
    assert any(r.startswith("negll_obs: no held-out rows") for r in metrics_not_logged(result.dataset))


def test_cdt_graph_stays_selectable_with_its_cycle(write_study):
    case = load_study(write_study({**SACHS, "data": {**SACHS["data"], "truth": "cdt"}}))[0]
    ds = make_dataset(case.config["data"], 0)
    assert ds.g.sum() == 18 and is_cyclic(ds.g[None])[0]
    plcg, pip2, pip3 = (ds.nodes.index(n) for n in ("plcg", "PIP2", "PIP3"))
    assert ds.g[plcg, pip2] == ds.g[pip2, pip3] == ds.g[pip3, plcg] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"graph": {"n_vars": 12}}, "has 11 variables"),
        ({"interventions": {"n_sets": 2}}, "no interventional test sets"),
        ({"n_observations": 7000, "n_ho_observations": 1000}, "exceeds the 7466 samples"),
        ({"dataset": "sach"}, "'sachs'"),
        ({"truth": "bnlearn"}, "'consensus' or 'cdt'"),
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
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{fake.parent}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0
    assert f"{path}: key 'data.dataset'" in out.stderr and "lacks" in out.stderr


@pytest.mark.integration
def test_shortened_sachs_study_logs_graph_metrics_against_the_consensus(tmp_path):
    proc = run_pytest(
        [
            "--configs",
            str(ROOT / "configs" / "sachs.yaml"),
            "--override",
            "inference.steps=10",
            "-k",
            "sachs-linear_gaussian-s0-svgd",
            "--run-anywhere",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    exp = client.get_experiment_by_name("dibs_vs_ensembles")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "sachs-linear_gaussian-s0-svgd"]
    assert run.info.status == "FINISHED"
    assert {"eshd", "auroc", "auprc", "negll_obs"} <= set(run.data.metrics)
    assert "negll_intrv" not in run.data.metrics
    assert "negll_intrv" in run.data.tags["metrics_not_logged"]
    assert run.data.params["data.dataset"] == "sachs"
    assert run.data.params["data.model.obs_noise"] == "1.0"
    tags = run.data.tags
    assert (tags["truth_edges"], tags["truth_acyclic"]) == ("17", "true")
    assert tags["data_variant"] == "sachs, consensus graph, standardised with the training split's statistics"
    assert tags["data_samples"] == "1000 training and 500 held-out rows of 7466 (all conditions pooled)"
    assert {"eshd_mixture", "auroc_mixture", "negll_obs_mixture"} <= set(run.data.metrics)
