"""``svgd``: DiBS with SVGD over the joint posterior of G and Θ (dibs-lib's ``JointDiBS``)."""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from harness.learners.settings import InferenceSettings


class Settings(InferenceSettings):
    n_particles: PositiveInt = 20
    h_latent: PositiveFloat = Field(5.0, description="kernel bandwidth on Z (dibs-lib default)")
    h_theta: PositiveFloat = Field(500.0, description="kernel bandwidth on Θ (dibs-lib default)")


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners import _dibs

    problem = _dibs.Problem.build(config["data"], settings.model_dump(), dataset.n_vars)
    return _dibs.fit_svgd(problem, settings.n_particles, settings.steps, dataset, key, monitor)
