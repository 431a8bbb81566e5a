"""A network given in the study file (``data.graph: {type: fixed, adjacency, nodes}`` with
``data.model.weights``): refused when malformed, generated as given, scored against its exact
posterior under the learners' named graph prior."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from harness import run_case
from harness.data import make_dataset
from harness.study.loading import StudyFileError, load_study
from tests.conftest import ROOT, tiny_study

# the DiBS paper's Table 2 toy (larslorch/dibs, branch `full`, eval/marginal_edge_dist.py)
ADJACENCY = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
WEIGHTS = [[0, 2, -2, 0], [0, 0, 0, 3], [0, 0, 0, 1], [0, 0, 0, 0]]

FIXED_STUDY = tiny_study(
    name="fixed",
    seeds=[0, 1],
    data={
        "graph": {"type": "fixed", "adjacency": ADJACENCY, "nodes": ["a", "b", "c", "d"]},
        "model": {"type": "linear_gaussian", "obs_noise": 1.0, "weights": WEIGHTS},
        "n_observations": 100,
        "n_ho_observations": 50,
        "interventions": {"n_sets": 1},
        "exact_posterior": True,
    },
    inference={"model": {"type": "bge"}, "graph_prior": "uniform"},
    learners={"mc3": {"n_particles": 400, "n_chains": 4, "burnin": 2000, "thin": 20}, "random": {"n_particles": 400}},
)


def changed(**changes) -> dict:
    """FIXED_STUDY with dotted keys set (``None`` removes one)."""
    study = copy.deepcopy(FIXED_STUDY)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        section = study
        for p in parents:
            section = section[p]
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    return study


@pytest.mark.parametrize(
    "change, key, message",
    [
        ({"data.graph.adjacency": [[0, 1, 0], [0, 0, 1]]}, "data.graph", "square matrix"),
        ({"data.graph.adjacency": [[0, 2], [0, 0]]}, "data.graph.adjacency.0.1", "0 or 1"),
        (
            {"data.graph.adjacency": [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]]},
            "data.graph",
            "not acyclic: a -> b -> c -> a",
        ),
        ({"data.graph.adjacency": [[1, 0], [0, 0]], "data.graph.nodes": None}, "data.graph", "X0 -> X0"),
        ({"data.graph.nodes": ["a", "b", "c"]}, "data.graph", "4 distinct names"),
        ({"data.graph.nodes": ["a", "b", "c", "a"]}, "data.graph", "4 distinct names"),
        ({"data.graph.n_vars": 5}, "data.graph", "leave n_vars out"),
        ({"data.model.weights": [[0, 2, -2], [0, 0, 0], [0, 0, 0]]}, "data.model.weights", "shape, 4 x 4"),
        ({"data.model.weights": [[0, 2, -2, 1], *WEIGHTS[1:]]}, "data.model.weights", "entries 0->3 disagree"),
        ({"data.model.weights": [[0, 0, -2, 0], *WEIGHTS[1:]]}, "data.model.weights", "entries 0->1 disagree"),
        (
            {"data.graph": {"type": "er", "n_vars": 4, "edges_per_node": 1}},
            "data.model.weights",
            "they need data.graph.type: fixed",
        ),
        ({"inference.graph_prior": None}, "inference.graph_prior", "required with a fixed network"),
        (
            {"inference.graph_prior": "er", "data.graph.edges_per_node": 2.0},
            "data.graph.edges_per_node",
            "the learners' er prior at edges_per_node = 2.0",
        ),
        ({"data.graph.edges": 4}, "data.graph.edges", "unknown key"),
    ],
)
def test_a_malformed_fixed_network_is_refused_with_file_and_key(change, key, message, write_study):
    path = write_study(changed(**change))
    with pytest.raises(StudyFileError) as err:
        load_study(path)
    text = str(err.value)
    assert text.startswith(str(path)) and f"key '{key}'" in text and message in text, text


def test_a_fixed_network_on_real_data_is_refused(write_study):
    study = changed(**{"data.model.weights": None})
    study["data"] = {"dataset": "sachs", "graph": {"type": "fixed", "adjacency": [[0, 1], [0, 0]]}, "model": {}}
    study["data"]["model"] = {"type": "linear_gaussian"}
    path = write_study(study)
    with pytest.raises(StudyFileError, match="graph.type cannot be fixed"):
        load_study(path)


def test_the_data_follow_the_given_network_and_weights():
    """The graph and weights are the file's for every seed; the rows are a linear Gaussian SEM with
    them: least squares on 20,000 rows recovers each node's weights (an independent check of the
    generator), and the seeds draw different noise."""
    data = changed(**{"data.n_observations": 20000})["data"]
    one, two = make_dataset(data, 0), make_dataset(data, 1)
    np.testing.assert_array_equal(one.g, ADJACENCY)
    np.testing.assert_array_equal(two.g, ADJACENCY)
    np.testing.assert_array_equal(one.theta, WEIGHTS)
    assert one.nodes == ["a", "b", "c", "d"]
    assert not np.allclose(one.x[:100], two.x[:100])
    x = one.x.astype(np.float64)
    for j in range(4):
        parents = np.flatnonzero(np.asarray(ADJACENCY)[:, j])
        if parents.size == 0:
            assert abs(x[:, j].var() - 1.0) < 0.05  # obs_noise 1.0 is the noise variance
            continue
        coef, res, *_ = np.linalg.lstsq(x[:, parents], x[:, j], rcond=None)
        np.testing.assert_allclose(coef, np.asarray(WEIGHTS)[parents, j], atol=0.05)
        assert abs(res[0] / len(x) - 1.0) < 0.05


def test_without_weights_the_seeds_draw_them_on_the_fixed_graph():
    data = changed(**{"data.model.weights": None})["data"]
    one, two = make_dataset(data, 0), make_dataset(data, 1)
    np.testing.assert_array_equal(one.g, two.g)
    edges = np.asarray(ADJACENCY, bool)
    assert not np.allclose(np.asarray(one.theta)[edges], np.asarray(two.theta)[edges])
    assert np.all(np.abs(np.asarray(one.theta)[edges]) >= 0.5)  # the model's min_edge


def test_learners_on_a_fixed_network_use_the_named_prior_and_find_its_exact_posterior(write_study):
    """Under BGe and a uniform prior the exact posterior of the toy spreads over its Markov
    equivalence class; mc3 finds it and chance does not."""
    cases = {c.learner: c for c in load_study(write_study(FIXED_STUDY)) if c.seed == 0}
    assert cases["mc3"].config["data"]["graph"]["adjacency"] == ADJACENCY
    results = {name: run_case(case) for name, case in cases.items()}
    mae = {name: r.metrics["edge_mae"] for name, r in results.items()}
    assert mae["mc3"] < 0.05 and mae["random"] > 2 * mae["mc3"], mae
    np.testing.assert_array_equal(results["mc3"].dataset.g, ADJACENCY)


def test_weights_stay_out_of_the_config_of_the_repositorys_other_studies():
    """``data.model.weights`` absent: no key in a case's config (so the config hashes of every study
    written before fixed networks are unchanged; the committed smoke baseline checks them too)."""
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if "fixed" in yaml.safe_load(path.read_text())["data"].get("graph", {}).get("type", ""):
            continue
        for case in load_study(path)[:3]:
            assert "weights" not in case.config["data"]["model"], case.id
