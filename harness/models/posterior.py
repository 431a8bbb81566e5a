"""What every learner returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Posterior:
    """A weighted particle approximation of p(G, Θ | D).

    ``g`` graphs [M, d, d] (``g[m, i, j] = 1`` for i → j); ``z`` latent particles [M, d, k, 2] of
    a DiBS learner (None for learners that produce graphs);
    ``theta`` a pytree of numpy arrays with leading dimension M; ``log_weights`` [M]
    (normalised; uniform unless a learner says otherwise). ``fit_s`` is the learner's wall time,
    ``compile_s`` the part of it spent compiling (0 when a compiled loop was reused), of which
    ``lower_s`` is tracing and lowering (what a persistent compilation cache cannot skip).
    ``diagnostics``: a learner's own figures, logged with the metrics under their names (which
    ``harness.evaluation.registry`` registers), e.g. mc3's acceptance rate and effective sample sizes.
    """

    g: np.ndarray
    theta: Any
    log_weights: np.ndarray
    z: np.ndarray | None = None
    fit_s: float = float("nan")
    compile_s: float = 0.0
    lower_s: float = 0.0
    diagnostics: dict = field(default_factory=dict)

    @property
    def n_particles(self) -> int:
        return self.g.shape[0]

    @classmethod
    def of_graphs(cls, g: np.ndarray, theta: Any, **fields) -> Posterior:
        """Equally weighted samples: graphs ``g`` [M, d, d] with their ``theta`` (None under a
        marginal model); ``fields`` the other attributes (``z``, ``fit_s``, ``diagnostics``, ...)."""
        m = len(g)
        return cls(g=g, theta=theta, log_weights=np.full(m, -np.log(m)), **fields)
