"""Benchmark harness for Bayesian causal discovery (DiBS with SVGD vs. an ensemble).

Usable without pytest::

    from harness import load_study, run_case
    cases = load_study("configs/smoke.yaml")
    result = run_case(cases[0])
    result.metrics["eshd"]

Importing ``harness`` (and validating studies) does not import JAX.
"""

__version__ = "0.1.0"

import os as _os

# MLflow's usage telemetry is off in every harness process (and so in the Slurm tasks, which inherit
# the environment): a study sends nothing anywhere but to its tracking store, and MLflow 3.17's
# telemetry thread races with requests of other threads (a heartbeat), failing them with
# KeyError '_MLFLOW_TELEMETRY_SESSION_ID' (seen in a Slurm task). MLFLOW_DISABLE_TELEMETRY=false
# in the environment turns it back on.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from harness.study.loading import Case, StudyFileError, load_cases, load_study  # noqa: E402


def run_case(case, **options):
    """Data, learner and metrics of one case (see :func:`harness.execution.run.run_case`)."""
    from harness.execution.run import run_case as _run_case

    return _run_case(case, **options)


__all__ = ["Case", "StudyFileError", "load_cases", "load_study", "run_case", "__version__"]
