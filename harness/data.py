"""Synthetic ground truth and data, built from dibs-lib's model classes.

Everything is fixed by the case's seed: ``case_keys(seed)`` splits ``PRNGKey(seed)`` into a data
key and a learner key, so the svgd and ensemble cases of one seed see identical ground truth and
data (the comparison is paired) and start from the same learner key.

Each interventional set draws ``ceil(perc_intervened * d)`` distinct target nodes and clamps them
to ``value``; it has ``n_samples`` samples (default: ``n_ho_observations``, since these sets are
test data). Interventional data are only used for evaluation (``negll_intrv``), never for fitting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from dibs.graph_utils import graph_to_mat
from dibs.models import DenseNonlinearGaussian, LinearGaussian
from dibs.models.graph import ErdosReniDAGDistribution, ScaleFreeDAGDistribution

from harness.study_schema import DataSpec
from harness.datasets import load_sachs, standardize


@dataclass
class InterventionSet:
    targets: list[int]
    value: float
    x: np.ndarray  # [n_samples, d]

    @property
    def mask(self) -> np.ndarray:
        m = np.zeros_like(self.x, dtype=np.int32)
        m[:, self.targets] = 1
        return m


@dataclass
class Dataset:
    g: np.ndarray  # ground-truth adjacency [d, d], g[i, j] = 1 for i -> j
    theta: Any  # ground-truth parameters (pytree of numpy arrays); None for real data
    x: np.ndarray  # training data [n_observations, d]
    x_ho: np.ndarray  # held-out observational data [n_ho_observations, d]
    interventions: list[InterventionSet] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # real data: the file's rows, "training" and "held_out"

    @property
    def n_vars(self) -> int:
        return self.g.shape[0]


def case_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(data key, learner key) for a seed."""
    data_key, learner_key = jax.random.split(jax.random.PRNGKey(seed))
    return data_key, learner_key


def make_graph_model(graph: dict):
    """The DAG prior (and generator) for a ``data.graph`` section."""
    cls = {"er": ErdosReniDAGDistribution, "sf": ScaleFreeDAGDistribution}[graph["type"]]
    epn = graph["edges_per_node"]
    return cls(n_vars=graph["n_vars"], n_edges_per_node=int(epn) if graph["type"] == "sf" else epn)


def make_likelihood_model(model: dict, n_vars: int, cls=None):
    """The BN model for a ``data.model`` section: dibs-lib's class (which generates the data), or
    ``cls``, a class with the same constructor (the learners' inference likelihood, see
    ``harness.likelihoods``)."""
    if model["type"] == "linear_gaussian":
        return (cls or LinearGaussian)(
            n_vars=n_vars,
            obs_noise=model["obs_noise"],
            mean_edge=model["mean_edge"],
            sig_edge=model["sig_edge"],
            min_edge=model["min_edge"],
        )
    return (cls or DenseNonlinearGaussian)(
        n_vars=n_vars,
        hidden_layers=tuple(model["hidden_layers"]),
        obs_noise=model["obs_noise"],
        sig_param=model["sig_param"],
    )


def freeze_section(section: dict) -> tuple:
    """A config section as hashable data (a jit static argument, an lru_cache key)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(section.items()))


def thaw_section(frozen: tuple) -> dict:
    """The inverse of :func:`freeze_section`."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in frozen}


def make_dataset(data: dict, seed: int) -> Dataset:
    """Ground truth, training data, held-out data and interventional sets for ``seed``."""
    spec = DataSpec.model_validate(data).model_dump()
    if spec["dataset"] is not None:
        return make_real_dataset(spec, seed)
    d = spec["graph"]["n_vars"]
    graph_model = make_graph_model(spec["graph"])
    model = make_likelihood_model(spec["model"], d)
    key, _ = case_keys(seed)

    key, k_graph, k_theta, k_obs, k_ho = jax.random.split(key, 5)
    g_ig = graph_model.sample_G(k_graph)
    theta = model.sample_parameters(key=k_theta, n_vars=d)
    x = model.sample_obs(key=k_obs, n_samples=spec["n_observations"], g=g_ig, theta=theta)
    x_ho = model.sample_obs(key=k_ho, n_samples=spec["n_ho_observations"], g=g_ig, theta=theta)

    iv = spec["interventions"]
    n_targets = math.ceil(d * iv["perc_intervened"])
    n_samples = iv["n_samples"] or spec["n_ho_observations"]
    sets = []
    for _ in range(iv["n_sets"]):
        key, k_targets, k_x = jax.random.split(key, 3)
        targets = sorted(int(t) for t in jax.random.choice(k_targets, d, (n_targets,), replace=False))
        x_i = model.sample_obs(
            key=k_x, n_samples=n_samples, g=g_ig, theta=theta, interv={t: iv["value"] for t in targets}
        )
        sets.append(InterventionSet(targets=targets, value=iv["value"], x=np.asarray(x_i)))

    return Dataset(
        g=np.asarray(graph_to_mat(g_ig), dtype=np.int32),
        theta=jax.tree_util.tree_map(np.asarray, theta),
        x=np.asarray(x),
        x_ho=np.asarray(x_ho),
        interventions=sets,
        nodes=[f"X{i}" for i in range(d)],
    )


def with_dtype(dataset: Dataset, dtype: str) -> Dataset:
    """The data set with its observations in ``dtype`` (``inference.dtype``): the same draws, cast, so
    that the float32 and float64 cases of a seed pair."""
    if dataset.x.dtype == np.dtype(dtype):
        return dataset
    sets = [dataclasses.replace(s, x=s.x.astype(dtype)) for s in dataset.interventions]
    return dataclasses.replace(dataset, x=dataset.x.astype(dtype), x_ho=dataset.x_ho.astype(dtype), interventions=sets)


def make_real_dataset(spec: dict, seed: int) -> Dataset:
    """A real data set: a seeded random split into disjoint training and held-out samples (the seed is
    ``split_seed`` when given, so that the seeds of a study vary only the learners' keys), then
    (``standardize``) both scaled with the training samples' column means and sds. With
    ``n_ho_observations: 0`` there are no held-out rows."""
    x_all, nodes, g = load_sachs(spec["truth"])
    key, _ = case_keys(seed if spec["split_seed"] is None else spec["split_seed"])
    order = np.asarray(jax.random.permutation(key, x_all.shape[0]))
    n, n_ho = spec["n_observations"], spec["n_ho_observations"]
    rows = {"training": order[:n], "held_out": order[n : n + n_ho]}
    x, x_ho = x_all[rows["training"]], x_all[rows["held_out"]]
    if spec["standardize"]:  # with the training split's statistics only: the held-out rows stay unseen
        x, x_ho = standardize(x), standardize(x_ho, reference=x) if len(x_ho) else x_ho
    return Dataset(g=g, theta=None, x=x.astype(np.float32), x_ho=x_ho.astype(np.float32), interventions=[],
                   nodes=nodes, rows=rows)
