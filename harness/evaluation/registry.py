"""Names of the metrics a case logs, and which way is better (importable without JAX, for config
validation)."""

METRICS = (
    "eshd",
    "auroc",
    "auprc",
    "negll_obs",
    "negll_intrv",
    "n_cyclic",
    "n_edges",
    "n_edges_mixture",
    "fit_s",
    "compile_s",
    # dibs-lib's and the paper's AUROC (diagonal included): for comparison with published numbers only
    "auroc_diag",
    "auroc_diag_mixture",
    # exact-posterior studies only (``data.exact_posterior``): the learner against p(G | D) ...
    "edge_mae",
    "graph_tv",
    "graph_kl",
    # ... and the exact posterior's own scores against the true graph: references, not verdicts
    "exact_eshd",
    "exact_auroc",
    # learners' own diagnostics (Posterior.diagnostics): structure MCMC ...
    "mc3_acceptance",
    "mc3_ess",
    "mc3_ess_edges",
    # ... and the bootstrap learners: resamples whose PDAG had conflicting orientations, or no
    # consistent extension (harness.learners._bootstrap)
    "bootstrap_conflicts",
    "bootstrap_fallbacks",
)

# The posterior metrics, compared between learners and against a baseline: True where lower is better.
LOWER_IS_BETTER = {
    "eshd": True,
    "auroc": False,
    "auprc": False,
    "negll_obs": True,
    "negll_intrv": True,
    "edge_mae": True,
    "graph_tv": True,
    "graph_kl": True,
}
COMPARED = tuple(LOWER_IS_BETTER)
# the same metrics under the DiBS+ (posterior-weighted) mixture: harness.evaluation.metrics
MIXTURE = tuple(f"{m}_mixture" for m in COMPARED)
METRICS += MIXTURE


def lower_is_better(metric: str) -> bool:
    """Direction of a posterior metric; ``<metric>_mixture`` goes the same way as ``<metric>``."""
    return LOWER_IS_BETTER[metric.removesuffix("_mixture")]


def is_compared(metric: str) -> bool:
    return metric.removesuffix("_mixture") in LOWER_IS_BETTER
