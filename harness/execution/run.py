"""Running one case, without pytest: ``run_case(case)`` gives the same numbers as the pytest case."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.data import make_dataset
from harness.data.dataset import Dataset, case_keys, with_dtype
from harness.evaluation.metrics import compute_metrics, graph_metrics, mixture_log_weights
from harness.evaluation.run_tags import run_tags
from harness.exact.enumeration import ExactPosterior, exact_posterior_of
from harness.execution.jax_setup import configure_jax
from harness.execution.monitor import Monitor
from harness.learners import learner_module
from harness.models.choice import learners_model
from harness.models.graphs import graphs_from_latents
from harness.models.posterior import Posterior
from harness.study.loading import Case
from harness.tracking.tags import diagnostics_tag


@dataclass
class CaseResult:
    case: Case
    dataset: Dataset
    posterior: Posterior
    metrics: dict[str, float]
    log_weights_mixture: np.ndarray  # [M] the DiBS+ weights the ``_mixture`` metrics use
    tags: dict[str, str] = field(default_factory=dict)  # what the metrics were computed against, what is missing
    timings: dict[str, float] = field(default_factory=dict)
    curves: list[tuple[int, dict]] = field(default_factory=list)  # (step, metrics) every eval_every steps
    exact: ExactPosterior | None = None  # p(G | D), in studies with data.exact_posterior


def run_case(
    case: Case,
    *,
    progress: bool | Callable[[str], None] = False,
    default_timeout_s: float | None = None,
    setup_jax: bool = False,
) -> CaseResult:
    """Generate the case's data, fit its learner, compute its metrics.

    ``progress`` prints steps done and steps/s while the learner runs (to stderr, or through the
    function given); the case fails with
    :class:`~harness.execution.monitor.CaseTimeout` past its study's ``timeout_s`` (else ``default_timeout_s``).
    ``setup_jax`` applies :func:`harness.execution.jax_setup.configure_jax` to this process first (the
    persistent compilation cache and the unrolled threefry lowering, as the pytest plugin and the Slurm
    tasks do): the same numbers, compiled faster; off by default, so that a library user's process
    keeps its JAX settings.
    """
    if setup_jax:
        configure_jax()
    monitor = Monitor(case_id=case.id, timeout_s=case.config.get("timeout_s") or default_timeout_s, progress=progress)
    t0 = time.perf_counter()
    dataset = make_dataset(case.config["data"], case.seed)
    monitor.check("after generating the data")
    t1 = time.perf_counter()
    dtype = case.config["inference"].get("dtype", "float32")
    with precision(dtype):
        return _fit_and_score(case, with_dtype(dataset, dtype), monitor, t0, t1)


@contextlib.contextmanager
def precision(dtype: str):
    """JAX's 64-bit mode on for a float64 case and off for a float32 one, for this case only: the
    process-wide switch is back as it was when the case ends, so a worker's next case gets the
    numbers it would get alone. dibs-lib has a switch of its own, the environment variable
    ``JAX_ENABLE_X64`` (``DenseNonlinearGaussian.sample_parameters`` casts its draws to float32
    unless it is ``True``); it is set to match for the case and restored after."""
    import jax

    before = os.environ.get("JAX_ENABLE_X64")
    os.environ["JAX_ENABLE_X64"] = str(dtype == "float64")
    try:
        with jax.enable_x64(dtype == "float64"):
            yield
    finally:
        if before is None:
            del os.environ["JAX_ENABLE_X64"]
        else:
            os.environ["JAX_ENABLE_X64"] = before


def _fit_and_score(case: Case, dataset: Dataset, monitor: Monitor, t0: float, t1: float) -> CaseResult:
    module = learner_module(case.learner)
    settings = module.Settings.model_validate(case.settings)
    monitor.eval_every = getattr(settings, "eval_every", None)
    monitor.evaluate = lambda z, theta: convergence_metrics(z, dataset)
    _, learner_key = case_keys(case.seed)
    posterior = module.fit(dataset, case.config, settings, learner_key, monitor)
    t2 = time.perf_counter()
    monitor.check("after the learner")
    exact = exact_posterior_of(case.config, dataset.x) if case.config["data"].get("exact_posterior") else None
    t3 = time.perf_counter()
    model, likelihood_impl = learners_model(case.config), getattr(settings, "likelihood_impl", "fused")
    mixture = mixture_log_weights(posterior, dataset, model, likelihood_impl)
    metrics = compute_metrics(posterior, dataset, model, likelihood_impl, exact, log_weights_mixture=mixture)
    t4 = time.perf_counter()
    timings = {
        "data_s": t1 - t0,
        "learner_s": t2 - t1,
        "metrics_s": t4 - t3,
        "curves_s": monitor.eval_s,
        "lower_s": posterior.lower_s,
    }
    if exact is not None:
        timings["exact_s"] = t3 - t2
    return CaseResult(
        case=case,
        dataset=dataset,
        posterior=posterior,
        metrics=metrics,
        log_weights_mixture=mixture,
        tags={**run_tags(case.config["data"], dataset), **diagnostics_tag(posterior.diagnostics)},
        timings=timings,
        curves=monitor.history,
        exact=exact,
    )


def convergence_metrics(z, dataset: Dataset) -> dict[str, float]:
    """eshd, auroc, expected edge count and cyclic particles of the current graphs (uniform weights),
    for the curves."""
    out = graph_metrics(Posterior.of_graphs(graphs_from_latents(z), theta=None, z=z), dataset.g)
    return {k: out[k] for k in ("eshd", "auroc", "n_edges", "n_cyclic") if k in out}
