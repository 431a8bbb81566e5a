"""Synthetic ground truth and data, built from dibs-lib's model classes.

Everything is fixed by the case's seed: ``case_keys(seed)`` splits ``PRNGKey(seed)`` into a data
key and a learner key, so the svgd and ensemble cases of one seed see identical ground truth and
data (the comparison is paired) and start from the same learner key.

Each interventional set draws ``ceil(perc_intervened * d)`` distinct target nodes and clamps them
to ``value``; it has ``n_samples`` samples (default: ``n_ho_observations``, since these sets are
test data). Interventional data are only used for evaluation (``negll_intrv``), never for fitting.
"""

from __future__ import annotations

import functools
import math
import random

import igraph as ig
import jax
import jax.numpy as jnp
import numpy as np
from dibs.graph_utils import graph_to_mat
from dibs.models import DenseNonlinearGaussian, LinearGaussian
from dibs.models.graph import ErdosReniDAGDistribution, ScaleFreeDAGDistribution

from harness.data.dataset import Dataset, InterventionSet, case_keys
from harness.data.spec import freeze_section, thaw_section


def make_graph_model(graph: dict):
    """The DAG prior (and generator) for a ``data.graph`` section."""
    if graph["type"] == "uniform":  # the learners' prior only (inference.graph_prior): every DAG alike
        from dibs.models import UniformDAGDistributionRejection

        return UniformDAGDistributionRejection(n_vars=graph["n_vars"])
    cls = {"er": ErdosReniDAGDistribution, "sf": ScaleFreeDAGDistribution}[graph["type"]]
    epn = graph["edges_per_node"]
    return cls(n_vars=graph["n_vars"], n_edges_per_node=int(epn) if graph["type"] == "sf" else epn)


def make_likelihood_model(model: dict, n_vars: int, cls=None):
    """The BN model for a ``data.model`` section: dibs-lib's class (which generates the data), or
    ``cls``, a class with the same constructor (the learners' inference likelihood, see
    ``harness.models.likelihoods``)."""
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


def dibs_lib_dataset(spec: dict, seed: int) -> Dataset:
    """The synthetic data set of a validated ``data`` section from dibs-lib's own samplers
    (``sample_G``, ``sample_parameters``, ``sample_obs``), called op by op: the nonlinear model's
    path, a fixed network's (its adjacency instead of ``sample_G``; ``data.model.weights``, where
    given, instead of the drawn weights; the keys as for a drawn graph), and the reference that
    :func:`make_linear_gaussian_dataset` is tested against."""
    d = spec["graph"]["n_vars"]
    model = make_likelihood_model(spec["model"], d)
    key, _ = case_keys(seed)

    key, k_graph, k_theta, k_obs, k_ho = jax.random.split(key, 5)
    fixed = spec["graph"]["type"] == "fixed"
    g_ig = fixed_network(spec["graph"]) if fixed else make_graph_model(spec["graph"]).sample_G(k_graph)
    theta = model.sample_parameters(key=k_theta, n_vars=d)
    if spec["model"].get("weights") is not None:
        theta = jnp.asarray(spec["model"]["weights"], dtype=theta.dtype)
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
        nodes=(spec["graph"].get("nodes") if fixed else None) or [f"X{i}" for i in range(d)],
    )


def fixed_network(graph: dict) -> ig.Graph:
    """The igraph DAG of a ``data.graph: {type: fixed, adjacency}`` section."""
    return ig.Graph.Adjacency(graph["adjacency"], mode="directed")


def make_linear_gaussian_dataset(spec: dict, seed: int) -> Dataset:
    """:func:`dibs_lib_dataset` for the linear Gaussian model, bit for bit, in far fewer dispatches:
    run op by op, dibs-lib's samplers made a new process compile ~90 small programs for its first data
    set, and each later seed a few more. Here every random draw comes from one program
    (:func:`_linear_gaussian_draws`, compiled once per shape); NumPy does what is exact (copies,
    clamps) or IEEE-rounded alike (scalings), and JAX, op by op as in dibs-lib, each node's dot
    product with its parents (XLA's summation order). ``tests/test_data.py`` compares the two."""
    d = spec["graph"]["n_vars"]
    iv = spec["interventions"]
    n_samples = iv["n_samples"] or spec["n_ho_observations"]
    data_key, _ = case_keys(seed)  # outside the program: PRNGKey takes 64-bit seeds, a traced int32 would not
    draws = jax.device_get(
        _linear_gaussian_draws(
            data_key,
            freeze_section(spec["graph"]),
            freeze_section(spec["model"]),
            spec["n_observations"],
            spec["n_ho_observations"],
            n_samples,
            iv["n_sets"],
            math.ceil(d * iv["perc_intervened"]),
        )
    )
    g_ig = _graph_from_draws(spec["graph"], draws)
    model = spec["model"]
    theta = _scaled(draws["theta"], model["sig_edge"], model["mean_edge"])
    theta = theta + _scaled(np.sign(theta), model["min_edge"])

    def ancestral(normals, interv=None):
        z = _scaled(normals, np.sqrt(normals.dtype.type(model["obs_noise"])))
        return _ancestral_linear_gaussian(g_ig, theta, z, interv or {})

    sets = []
    for targets, z in zip(draws["targets"], draws["z_sets"]):
        targets = sorted(int(t) for t in targets)
        x_i = ancestral(z, {t: iv["value"] for t in targets})
        sets.append(InterventionSet(targets=targets, value=iv["value"], x=x_i))
    return Dataset(
        g=np.asarray(g_ig.get_adjacency().data, dtype=np.int32),
        theta=np.asarray(theta),
        x=ancestral(draws["z_obs"]),
        x_ho=ancestral(draws["z_ho"]),
        interventions=sets,
        nodes=[f"X{i}" for i in range(d)],
    )


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6, 7))
def _linear_gaussian_draws(
    data_key, graph: tuple, model: tuple, n_obs: int, n_ho: int, n_samples: int, n_sets: int, n_targets: int
) -> dict:
    """Every random draw of a linear Gaussian data set, with the keys and calls of the op-by-op
    version: the graph (ER: dibs-lib's ``sample_G(return_mat=True)``; SF: the inputs of its igraph
    construction), and the standard normals behind the weights and each ``sample_obs`` call's noise.
    They are scaled outside: in one program, XLA fuses a scaling with the draw's last multiply into
    an FMA and rounds differently from op-by-op JAX (an optimization barrier does not stop it)."""
    graph, model = thaw_section(graph), thaw_section(model)
    d = graph["n_vars"]
    key, k_graph, k_theta, k_obs, k_ho = jax.random.split(data_key, 5)
    out = {"theta": jax.random.normal(k_theta, shape=(d, d))}  # LinearGaussian.sample_parameters
    if graph["type"] == "er":
        out["g"] = make_graph_model(graph).sample_G(k_graph, return_mat=True)
    else:  # ScaleFreeDAGDistribution.sample_G seeds Python's random with the key's (uint32) sum
        out["key_sum"], out["perm"] = k_graph.sum(), jax.random.permutation(k_graph, d)

    def noise(k, n):  # sample_obs's draw
        _, subk = jax.random.split(k)
        return jax.random.normal(subk, shape=(n, d))

    if n_obs == n_ho:  # one draw batched over both keys: the same numbers, half the program
        out["z_obs"], out["z_ho"] = jax.vmap(noise, in_axes=(0, None))(jnp.stack([k_obs, k_ho]), n_obs)
    else:
        out["z_obs"], out["z_ho"] = noise(k_obs, n_obs), noise(k_ho, n_ho)

    def intervention_set(key, _):  # the key chain of the sets is sequential: a scan, compiled once
        key, k_targets, k_x = jax.random.split(key, 3)
        return key, (jax.random.choice(k_targets, d, (n_targets,), replace=False), noise(k_x, n_samples))

    _, (out["targets"], out["z_sets"]) = jax.lax.scan(intervention_set, key, length=n_sets)
    return out


def _scaled(x: np.ndarray, scale, shift=None) -> np.ndarray:
    """``shift + scale * x`` rounded as op-by-op JAX rounds it: each operation on its own, in x's
    dtype (NumPy's float32 arithmetic is IEEE, as XLA's is)."""
    t = x.dtype.type
    y = t(scale) * x
    return y if shift is None else t(shift) + y


def _graph_from_draws(graph: dict, draws: dict):
    """The igraph DAG that ``sample_G`` builds from the drawn matrix (ER) or permutation (SF)."""
    if graph["type"] == "er":  # dibs-lib's mat_to_graph without igraph's pandas import: edges column by column
        return ig.Graph(n=graph["n_vars"], edges=np.argwhere(draws["g"].T)[:, ::-1].tolist(), directed=True)
    random.seed(int(draws["key_sum"]))  # Barabasi draws from Python's random, as in dibs-lib
    return ig.Graph.Barabasi(n=graph["n_vars"], m=int(graph["edges_per_node"]), directed=True).permute_vertices(
        draws["perm"].tolist()
    )


def _ancestral_linear_gaussian(g_ig, theta: np.ndarray, z: np.ndarray, interv: dict) -> np.ndarray:
    """``LinearGaussian.sample_obs`` after its noise draw: the same operations on the same nodes,
    parents in the same order; JAX (op by op, so the same programs) computes what rounds."""
    x = np.zeros(z.shape, dtype=z.dtype)
    for j in g_ig.topological_sorting():
        if j in interv:
            x[:, j] = interv[j]
            continue
        parents = [g_ig.es[e].source for e in g_ig.incident(j, mode="in")]
        if parents:
            x[:, j] = jnp.asarray(x[:, parents]) @ jnp.asarray(theta[parents, j]) + jnp.asarray(z[:, j])
        else:
            x[:, j] = z[:, j]
    return x
