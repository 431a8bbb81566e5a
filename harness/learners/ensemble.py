"""``ensemble``: ``n_members`` DiBS particles optimised independently (no kernel interaction).

Same initial distribution, optimiser, schedules, steps and gradient estimators as ``svgd``; each
member has its own key and follows only its own posterior gradient. The members run as one
vectorised computation; ``_dibs.fit_members_one_by_one`` is the reference it is tested against.
"""

from __future__ import annotations

from pydantic import PositiveInt

from harness.learners.settings import InferenceSettings


class Settings(InferenceSettings):
    n_members: PositiveInt = 20


def check_model(model: dict) -> str | None:
    return None  # the data's models (JointDiBS), and marginal ones (MarginalDiBS: BGe, Θ integrated out)


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners import _dibs
    from harness.models.choice import learners_graph_prior, learners_model

    model, graph = learners_model(config), learners_graph_prior(config)
    problem = _dibs.Problem.build(config["data"], settings.model_dump(), dataset.n_vars, model, graph)
    return _dibs.fit_ensemble(problem, settings.n_members, settings.steps, dataset, key, monitor)
