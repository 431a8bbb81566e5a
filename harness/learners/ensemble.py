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


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners import _dibs

    problem = _dibs.Problem.build(config["data"], settings.model_dump(), dataset.n_vars)
    return _dibs.fit_ensemble(problem, settings.n_members, settings.steps, dataset, key, monitor)
