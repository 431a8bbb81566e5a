"""Benchmark harness for Bayesian causal discovery (DiBS with SVGD vs. an ensemble).

Usable without pytest::

    from harness import load_study, run_case
    cases = load_study("configs/smoke.yaml")
    result = run_case(cases[0])
    result.metrics["eshd"]

Importing ``harness`` (and validating studies) imports no JAX and changes no environment variable
or global setting; ``run_case(case, setup_jax=True)`` applies the JAX settings the pytest plugin
uses (compile cache, threefry lowering: the same numbers, faster).
"""

from harness.study.loading import Case, StudyFileError, load_cases, load_study
from harness.tracking.provenance import harness_version

__version__ = harness_version()


def run_case(case, **options):
    """Data, learner and metrics of one case (see :func:`harness.execution.run.run_case`)."""
    from harness.execution.run import run_case as _run_case

    return _run_case(case, **options)


__all__ = ["Case", "StudyFileError", "load_cases", "load_study", "run_case", "__version__"]
