"""Real data sets with a known (consensus) graph, loaded from files an installed package ships.

``sachs``: the flow-cytometry data of Sachs et al. (2005), 11 proteins and phospholipids, 7466
samples: the observational and the interventional conditions pooled into one table, as ``cdt``
ships it (the intervention labels are not in the file, so every row is used as observational).
The ``cdt`` package on PyPI ships them (``cyto_full_data.csv``, ``cyto_full_target.csv``); they
are found through the package's location, without importing ``cdt`` (whose import is heavy).
Install with ``pip install -e ".[sachs]"``.

Two ground truths (``data.truth``):

- ``consensus`` (default): the 17-edge acyclic consensus network, as bnlearn's ``sachs`` network,
  DAG-GFlowNet and BCD Nets use it (:data:`SACHS_CONSENSUS`, mapped onto cdt's column names).
- ``cdt``: the 18-edge list ``cdt`` ships, which the DiBS paper used. It contains the cycle
  plcg → PIP2 → PIP3 → plcg (cdt issue 143), so no DAG scores an ``eshd`` below 1 against it.

Nothing here imports JAX at import time (study validation reads :data:`REAL_DATASETS`);
``pandas`` is imported only when a data set is loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MissingDataset(LookupError):
    """The package that ships a real data set is not installed."""


@dataclass(frozen=True)
class RealDataset:
    name: str
    n_vars: int
    n_samples: int
    default_edges_per_node: float  # graph prior density when the study does not give one


REAL_DATASETS = {"sachs": RealDataset("sachs", n_vars=11, n_samples=7466, default_edges_per_node=1.0)}


# Raf→Mek, Mek→Erk, Erk→Akt, PKA→{Raf, Mek, Erk, Akt, P38, Jnk}, PKC→{Raf, Mek, PKA, P38, Jnk},
# Plcg→{PIP2, PIP3}, PIP3→PIP2, in cdt's column names (Erk = p44/42, Akt = pakts473, Jnk = pjnk)
SACHS_CONSENSUS = (
    ("praf", "pmek"),
    ("pmek", "p44/42"),
    ("p44/42", "pakts473"),
    ("PKA", "praf"),
    ("PKA", "pmek"),
    ("PKA", "p44/42"),
    ("PKA", "pakts473"),
    ("PKA", "P38"),
    ("PKA", "pjnk"),
    ("PKC", "praf"),
    ("PKC", "pmek"),
    ("PKC", "PKA"),
    ("PKC", "P38"),
    ("PKC", "pjnk"),
    ("plcg", "PIP2"),
    ("plcg", "PIP3"),
    ("PIP3", "PIP2"),
)
SACHS_TRUTHS = ("consensus", "cdt")


def sachs_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("cdt")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataset(
            "the Sachs data ship with the optional package `cdt`, which is not installed; "
            'install the extra: pip install -e ".[sachs]"'
        )
    resources = Path(list(spec.submodule_search_locations)[0]) / "data" / "resources"
    files = resources / "cyto_full_data.csv", resources / "cyto_full_target.csv"
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingDataset(f"the installed `cdt` package lacks {', '.join(missing)}")
    return files


def load_sachs(truth: str = "consensus") -> tuple[np.ndarray, list[str], np.ndarray]:
    """(samples [7466, 11] as shipped, node names, adjacency [11, 11] of the ``truth`` graph with
    g[i, j] = 1 for i -> j)."""
    import pandas as pd

    data_file, target_file = sachs_files()
    frame = pd.read_csv(data_file)
    nodes = list(frame.columns)
    if truth == "cdt":
        table = pd.read_csv(target_file)
        edges = list(zip(table["Cause"], table["Effect"]))
    elif truth == "consensus":
        edges = SACHS_CONSENSUS
    else:
        raise ValueError(f"unknown Sachs ground truth {truth!r}; expected one of {SACHS_TRUTHS}")
    g = np.zeros((len(nodes), len(nodes)), dtype=np.int32)
    for cause, effect in edges:
        g[nodes.index(cause), nodes.index(effect)] = 1
    return frame.to_numpy(dtype=np.float64), nodes, g


def standardize(x: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """``x`` with each column centred and scaled by the mean and sd of ``reference`` (default ``x``)."""
    reference = x if reference is None else reference
    return (x - reference.mean(axis=0)) / reference.std(axis=0)


def make_real_dataset(spec: dict, seed: int):
    """A real data set: a seeded random split into disjoint training and held-out samples (the seed is
    ``split_seed`` when given, so that the seeds of a study vary only the learners' keys), then
    (``standardize``) both scaled with the training samples' column means and sds. With
    ``n_ho_observations: 0`` there are no held-out rows."""
    import jax

    from harness.data.dataset import Dataset, case_keys

    x_all, nodes, g = load_sachs(spec["truth"])
    key, _ = case_keys(seed if spec["split_seed"] is None else spec["split_seed"])
    order = np.asarray(jax.random.permutation(key, x_all.shape[0]))
    n, n_ho = spec["n_observations"], spec["n_ho_observations"]
    rows = {"training": order[:n], "held_out": order[n : n + n_ho]}
    x, x_ho = x_all[rows["training"]], x_all[rows["held_out"]]
    if spec["standardize"]:  # with the training split's statistics only: the held-out rows stay unseen
        x, x_ho = standardize(x), standardize(x_ho, reference=x) if len(x_ho) else x_ho
    return Dataset(
        g=g, theta=None, x=x.astype(np.float32), x_ho=x_ho.astype(np.float32), interventions=[], nodes=nodes, rows=rows
    )
