"""Ground truth and data: fixed by the seed, from dibs-lib's models, interventions clamped."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from harness.data import make_dataset
from harness.data.spec import DataSpec
from harness.data.synthetic import _graph_from_draws, dibs_lib_dataset
from harness.models.graphs import is_cyclic
from tests.conftest import ROOT, TINY


def data(**changes):
    d = copy.deepcopy(TINY["data"])
    for key, value in changes.items():
        section, _, leaf = key.rpartition(".")
        (d[section] if section else d)[leaf] = value
    return DataSpec.model_validate(d).model_dump()


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = make_dataset(data(), 3), make_dataset(data(), 3), make_dataset(data(), 4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.interventions[1].x, b.interventions[1].x)
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize("graph_type", ["er", "sf"])
def test_ground_truth_is_a_dag_and_shapes_follow_the_config(graph_type):
    cfg = data(
        **{
            "graph.type": graph_type,
            "graph.n_vars": 7,
            "n_observations": 13,
            "n_ho_observations": 11,
            "interventions.n_sets": 3,
            "interventions.perc_intervened": 0.3,
            "interventions.value": 2.5,
        }
    )
    ds = make_dataset(cfg, 0)
    assert ds.g.shape == (7, 7) and not is_cyclic(ds.g[None])[0] and ds.g.sum() > 0
    assert ds.x.shape == (13, 7) and ds.x_ho.shape == (11, 7)
    assert len(ds.interventions) == 3
    for s in ds.interventions:
        assert len(s.targets) == math.ceil(7 * 0.3) == len(set(s.targets))
        assert s.x.shape == (11, 7)  # n_samples defaults to n_ho_observations
        np.testing.assert_array_equal(s.x[:, s.targets], 2.5)
        assert (s.mask[:, s.targets] == 1).all() and s.mask.sum() == 11 * len(s.targets)


def test_sf_graph_has_the_configured_edges_per_node():
    ds = make_dataset(data(**{"graph.type": "sf", "graph.n_vars": 8, "graph.edges_per_node": 2}), 1)
    # Barabási-Albert with m = 2: every node after the first adds up to 2 edges
    assert 8 <= ds.g.sum() <= 2 * 8


def _linear_variants():
    studies = {path.stem: yaml.safe_load(path.read_text()) for path in sorted((ROOT / "configs").glob("*.yaml"))}
    linear = {
        name: s["data"]
        for name, s in studies.items()
        if not s["data"].get("dataset") and s["data"]["model"]["type"] == "linear_gaussian"
    }
    assert {"smoke", "exact_smoke", "dibs_vs_ensemble_linear"} <= set(linear)
    tiny = data()
    return [
        *((name, d) for name, d in linear.items()),
        (
            "sf-m2-unequal-sizes",
            {
                **tiny,
                "graph": {"type": "sf", "n_vars": 9, "edges_per_node": 2},
                "n_observations": 17,
                "n_ho_observations": 23,
                "interventions": {"n_sets": 3, "perc_intervened": 0.3, "value": -1.5, "n_samples": 11},
            },
        ),
        (
            "er-shifted-weights-no-sets",
            {
                **tiny,
                "graph": {"type": "er", "n_vars": 8, "edges_per_node": 2},
                "model": {
                    "type": "linear_gaussian",
                    "mean_edge": 0.7,
                    "sig_edge": 1.3,
                    "min_edge": 0.5,
                    "obs_noise": 0.3,
                },
                "interventions": {"n_sets": 0},
            },
        ),
    ]


@pytest.mark.parametrize("name, section", _linear_variants(), ids=lambda v: v if isinstance(v, str) else "")
def test_linear_gaussian_data_are_dibs_lib_samplers_data_bit_for_bit(name, section):
    """The one-program linear Gaussian path against dibs-lib's samplers called op by op (every study
    file's data section, and variants for the branches those do not reach)."""
    spec = DataSpec.model_validate(section).model_dump()
    for seed in (0, 7, 2**40 + 3):
        fast, ref = make_dataset(section, seed), dibs_lib_dataset(spec, seed)
        np.testing.assert_array_equal(fast.g, ref.g)
        for a, b in [(fast.theta, ref.theta), (fast.x, ref.x), (fast.x_ho, ref.x_ho)]:
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        assert [s.targets for s in fast.interventions] == [s.targets for s in ref.interventions]
        assert all(a.x.tobytes() == b.x.tobytes() for a, b in zip(fast.interventions, ref.interventions))


def test_er_graph_has_dibs_libs_edge_order():
    """Parents are summed in edge order, so the igraph graph must list its edges as mat_to_graph does."""
    from dibs.graph_utils import mat_to_graph

    rng = np.random.default_rng(0)
    for _ in range(20):
        mat = np.tril(rng.random((7, 7)) < 0.4, k=-1).astype(np.int32)[rng.permutation(7)][:, rng.permutation(7)]
        mine = _graph_from_draws({"type": "er", "n_vars": 7}, {"g": mat})
        assert [e.tuple for e in mine.es] == [e.tuple for e in mat_to_graph(mat).es]


def test_nonlinear_model_data():
    cfg = data(**{"model": {"type": "nonlinear_gaussian", "hidden_layers": [3]}})
    ds = make_dataset(cfg, 0)
    assert np.isfinite(ds.x).all() and ds.x.shape == (30, 4)
    import jax

    leaves = jax.tree_util.tree_leaves(ds.theta)
    assert leaves and all(isinstance(leaf, np.ndarray) for leaf in leaves)


def test_linear_data_follow_the_ground_truth_weights():
    cfg = data(**{"n_observations": 4000, "graph.n_vars": 4, "model": {"type": "linear_gaussian", "obs_noise": 0.1}})
    ds = make_dataset(cfg, 2)
    i, j = np.argwhere(ds.g)[0]
    # regress x_j on its parents: the coefficient of x_i recovers theta[i, j]
    parents = np.flatnonzero(ds.g[:, j])
    coef, *_ = np.linalg.lstsq(ds.x[:, parents], ds.x[:, j], rcond=None)
    assert coef[list(parents).index(i)] == pytest.approx(ds.theta[i, j], abs=0.05)
