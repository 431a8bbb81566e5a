"""Names of the metrics a case logs (importable without JAX, for config validation)."""

METRICS = (
    "eshd",
    "auroc",
    "auprc",
    "negll_obs",
    "negll_intrv",
    "n_cyclic",
    "fit_s",
    "compile_s",
)
