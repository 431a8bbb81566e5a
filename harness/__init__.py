"""Benchmark harness for Bayesian causal discovery (DiBS with SVGD vs. an ensemble).

Usable without pytest::

    from harness import load_study, run_case
    cases = load_study("configs/smoke.yaml")
    result = run_case(cases[0])
    result.metrics["eshd"]

Importing ``harness`` (and validating studies) does not import JAX.
"""

__version__ = "0.1.0"

from harness.config import Case, StudyFileError, load_cases, load_study  # noqa: E402


def run_case(case, **options):
    """Data, learner and metrics of one case (see :func:`harness.run.run_case`)."""
    from harness.run import run_case as _run_case

    return _run_case(case, **options)


__all__ = ["Case", "StudyFileError", "load_cases", "load_study", "run_case", "__version__"]
