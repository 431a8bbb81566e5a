"""A case's data set: ground truth, training rows, held-out rows and interventional test sets.

Everything is fixed by the case's seed: ``case_keys(seed)`` splits ``PRNGKey(seed)`` into a data
key and a learner key, so the svgd and ensemble cases of one seed see identical ground truth and
data (the comparison is paired) and start from the same learner key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np


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


def with_dtype(dataset: Dataset, dtype: str) -> Dataset:
    """The data set with its observations in ``dtype`` (``inference.dtype``): the same draws, cast, so
    that the float32 and float64 cases of a seed pair."""
    if dataset.x.dtype == np.dtype(dtype):
        return dataset
    sets = [dataclasses.replace(s, x=s.x.astype(dtype)) for s in dataset.interventions]
    return dataclasses.replace(dataset, x=dataset.x.astype(dtype), x_ho=dataset.x_ho.astype(dtype), interventions=sets)
