"""Tags that say what a case's metrics were computed against, and why a metric it usually logs is
missing: derived here, with the metrics, so that the record reaches the tracking layer complete."""

from __future__ import annotations

from harness.data.real import REAL_DATASETS
from harness.evaluation.metrics import undefined_areas
from harness.models.graphs import is_cyclic


def metrics_not_logged(dataset) -> list[str]:
    """Why a metric a case usually logs is missing from this one (one reason per sentence)."""
    areas = undefined_areas(dataset.g)
    reasons = [areas] if areas else []
    if dataset.theta is None:
        reasons.append("negll_intrv: real data has no interventional test sets (and no ground-truth parameters exist)")
    if not len(dataset.x_ho):
        reasons.append("negll_obs: no held-out rows (n_ho_observations: 0; every row is training data)")
    return reasons


def data_tags(data: dict, dataset) -> dict[str, str]:
    """What the case was scored against: the truth's edge count and acyclicity; for real data the
    variant and the samples used."""
    tags = {"truth_edges": str(int(dataset.g.sum())), "truth_acyclic": str(not is_cyclic(dataset.g[None])[0]).lower()}
    if data.get("dataset"):
        real = REAL_DATASETS[data["dataset"]]
        scaling = "standardised with the training split's statistics" if data["standardize"] else "not standardised"
        tags["data_variant"] = f"{real.name}, {data['truth']} graph, {scaling}"
        tags["data_samples"] = (
            f"{data['n_observations']} training and {data['n_ho_observations']} held-out rows of "
            f"{real.n_samples} (all conditions pooled)"
        )
    return tags


def run_tags(data: dict, dataset) -> dict[str, str]:
    """Every tag of a case's run that its data and metrics decide."""
    tags = data_tags(data, dataset)
    not_logged = metrics_not_logged(dataset)
    if not_logged:
        tags["metrics_not_logged"] = "; ".join(not_logged)
    return tags
