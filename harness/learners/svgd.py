"""``svgd``: DiBS with SVGD over the joint posterior of G and Θ (dibs-lib's ``JointDiBS``), or over
p(G | D) alone under a marginal ``inference.model`` (dibs-lib's ``MarginalDiBS``: ``h_latent`` is its
kernel's bandwidth, ``h_theta`` unused)."""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from harness.learners.settings import InferenceSettings


class Settings(InferenceSettings):
    n_particles: PositiveInt = 20
    h_latent: PositiveFloat = Field(5.0, description="kernel bandwidth on Z (dibs-lib default)")
    h_theta: PositiveFloat = Field(500.0, description="kernel bandwidth on Θ (dibs-lib default)")


def check_model(model: dict) -> str | None:
    return None  # the data's models (JointDiBS), and marginal ones (MarginalDiBS: BGe, Θ integrated out)


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners import _dibs
    from harness.models.choice import learners_graph_prior, learners_model

    model, graph = learners_model(config), learners_graph_prior(config)
    problem = _dibs.Problem.build(config["data"], settings.model_dump(), dataset.n_vars, model, graph)
    return _dibs.fit_svgd(problem, settings.n_particles, settings.steps, dataset, key, monitor)
