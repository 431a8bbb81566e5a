"""Real data sets with a known (consensus) graph, loaded from files an installed package ships.

``sachs``: the flow-cytometry data of Sachs et al. (2005), 11 proteins and phospholipids, 7466
samples (all conditions pooled, as shipped), with the consensus network as ground truth. The
``cdt`` package on PyPI ships them (``cyto_full_data.csv``, ``cyto_full_target.csv``); they are
found through the package's location, without importing ``cdt`` (whose import is heavy). Install
with ``pip install -e ".[sachs]"``. The edge list shipped by ``cdt`` has 18 edges (the paper's
figure is often quoted as 17); we use the file as shipped.

Nothing here imports JAX; ``pandas`` is imported only when a data set is loaded.
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


def load_sachs() -> tuple[np.ndarray, list[str], np.ndarray]:
    """(samples [7466, 11] as shipped, node names, consensus adjacency [11, 11] with g[i, j] = 1 for i -> j)."""
    import pandas as pd

    data_file, target_file = sachs_files()
    frame = pd.read_csv(data_file)
    nodes = list(frame.columns)
    edges = pd.read_csv(target_file)
    g = np.zeros((len(nodes), len(nodes)), dtype=np.int32)
    for cause, effect in zip(edges["Cause"], edges["Effect"]):
        g[nodes.index(cause), nodes.index(effect)] = 1
    return frame.to_numpy(dtype=np.float64), nodes, g


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)
