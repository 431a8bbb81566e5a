"""``bootstrap_pc``: the DiBS paper's BPC* baseline, causal-learn's PC on bootstrap resamples.

Each of the ``n_particles`` resamples of the training rows gives one DAG: causal-learn's PC (stable
skeleton, Fisher-z test at level ``alpha``; 0.05 as the paper's ``--joint_bootstrap_pc_ci_alpha``
default, larslorch/dibs branch ``full``, ``dibs/eval/parser.py``, whose R ``gaussCItest`` is the same
Fisher-z test), then a random consistent extension of its output; Θ by maximum likelihood. PC can
return conflicting orientations or a PDAG with no consistent extension: ``_bootstrap`` states the
rule applied to each and logs how often (``bootstrap_conflicts``, ``bootstrap_fallbacks``).
Linear Gaussian studies only.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt

from harness.data.spec import Strict
from harness.learners._bootstrap import linear_gaussian_only

check_model = linear_gaussian_only("bootstrap_pc")


class Settings(Strict):
    n_particles: PositiveInt = Field(20, description="bootstrap resamples, one DAG each (the budget)")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the Fisher-z tests")


def learn_pdag(x, settings: Settings):
    """causal-learn's PC endpoint matrix on rows ``x`` (the call the learner makes per resample)."""
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.cit import fisherz

    return pc(x, alpha=settings.alpha, indep_test=fisherz, stable=True, show_progress=False).G.graph


def fit(dataset, config: dict, settings: Settings, key, monitor=None):
    from harness.learners._bootstrap import fit_case

    return fit_case(dataset, config, key, settings.n_particles, lambda x: learn_pdag(x, settings))
