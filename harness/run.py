"""Running one case, without pytest: ``run_case(case)`` gives the same numbers as the pytest case."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.config import Case
from harness.jax_setup import configure_jax
from harness.data import Dataset, case_keys, make_dataset
from harness.learners import learner_module
from harness.metrics import compute_metrics
from harness.posterior import Posterior


@dataclass
class CaseResult:
    case: Case
    dataset: Dataset
    posterior: Posterior
    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


def run_case(case: Case) -> CaseResult:
    """Generate the case's data, fit its learner, compute its metrics."""
    configure_jax()
    t0 = time.perf_counter()
    dataset = make_dataset(case.config["data"], case.seed)
    t1 = time.perf_counter()
    module = learner_module(case.learner)
    settings = module.Settings.model_validate(case.settings)
    _, learner_key = case_keys(case.seed)
    posterior = module.fit(dataset, case.config, settings, learner_key)
    t2 = time.perf_counter()
    metrics = compute_metrics(posterior, dataset, case.config["data"]["model"])
    t3 = time.perf_counter()
    timings = {"data_s": t1 - t0, "learner_s": t2 - t1, "metrics_s": t3 - t2}
    return CaseResult(case=case, dataset=dataset, posterior=posterior, metrics=metrics, timings=timings)
