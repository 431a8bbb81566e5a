"""The learners' graph priors as per-node tables of the parent count (structure-modular: a DAG's
log prior is the sum over its nodes, up to a constant).

dibs-lib's model for ``data.graph``: ER ``|Pa| · log(p / (1 - p))``, SF ``-3 · log(1 + |Pa|)``
(each dibs-lib's ``unnormalized_log_prob`` up to a constant).
"""

from __future__ import annotations

import math

import numpy as np


def log_graph_prior_table(graph: dict, d: int) -> np.ndarray:
    """[d] unnormalised log prior of one node's parent set by its size 0..d-1 (dibs-lib's ER or SF
    model for ``data.graph``; a DAG's log prior is the sum over its nodes, up to a constant)."""
    k = np.arange(d, dtype=np.float64)
    if graph["type"] == "uniform":  # every DAG alike (dibs-lib's UniformDAGDistributionRejection)
        return np.zeros(d)
    if graph["type"] == "er":
        p = graph["edges_per_node"] * d / (d * (d - 1) / 2)  # dibs-lib's ErdosReniDAGDistribution.p
        return k * (math.log(p) - math.log1p(-p))
    return -3.0 * np.log1p(k)
