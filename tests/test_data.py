"""Ground truth and data: fixed by the seed, from dibs-lib's models, interventions clamped."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from harness.study_schema import DataSpec
from harness.data import make_dataset
from harness.metrics import is_cyclic
from tests.conftest import TINY


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
    cfg = data(**{"graph.type": graph_type, "graph.n_vars": 7, "n_observations": 13, "n_ho_observations": 11,
                  "interventions.n_sets": 3, "interventions.perc_intervened": 0.3, "interventions.value": 2.5})
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
