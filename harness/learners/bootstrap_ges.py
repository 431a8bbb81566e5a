"""``bootstrap_ges``: the DiBS paper's BGES* baseline, causal-learn's GES on bootstrap resamples.

Each of the ``n_particles`` resamples of the training rows (drawn with replacement, with the case's
key) gives one DAG: causal-learn's GES with the BIC score (``local_score_BIC``: per node
−n/2 (1 + log σ̂²) − λ (|Pa| + 1) log n, with ``lambda_value`` λ = 0.5, the standard BIC penalty and
causal-learn's default), then a random consistent extension of its CPDAG; Θ by maximum likelihood
(``_bootstrap``, which cites the paper's code for each step). Linear Gaussian studies only.
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from harness.data.spec import Strict
from harness.learners._bootstrap import linear_gaussian_only

check_model = linear_gaussian_only("bootstrap_ges")


class Settings(Strict):
    n_particles: PositiveInt = Field(20, description="bootstrap resamples, one DAG each (the budget)")
    lambda_value: PositiveFloat = Field(0.5, description="BIC penalty per parameter, times log n (0.5: standard BIC)")


def learn_cpdag(x, settings: Settings):
    """causal-learn's GES endpoint matrix on rows ``x`` (the call the learner makes per resample)."""
    from causallearn.search.ScoreBased.GES import ges

    return ges(x, score_func="local_score_BIC", lambda_value=settings.lambda_value)["G"].graph


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners._bootstrap import fit_case

    return fit_case(dataset, config, key, settings.n_particles, lambda x: learn_cpdag(x, settings))
