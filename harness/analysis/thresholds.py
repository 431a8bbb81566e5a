"""Regression thresholds: ``{metric: {min: x}}`` / ``{max: x}`` per learner."""

from __future__ import annotations

import math


def threshold_misses(case_id: str, thresholds: dict, metrics: dict) -> list[str]:
    """One message per missed bound, naming the case, metric, value and bound."""
    misses = []
    for metric, bound in thresholds.items():
        value = metrics.get(metric)
        if value is None:
            misses.append(
                f"{case_id}: {metric} was not computed (the run's metrics_not_logged tag says why), "
                f"but has a threshold {bound}"
            )
            continue
        if not math.isfinite(value):  # NaN compares False with every bound: it would pass both
            misses.append(f"{case_id}: {metric} = {value} is not a finite number, so it meets no threshold {bound}")
            continue
        if bound.get("max") is not None and value > bound["max"]:
            misses.append(f"{case_id}: {metric} = {value:.4g} is above its max {bound['max']}")
        if bound.get("min") is not None and value < bound["min"]:
            misses.append(f"{case_id}: {metric} = {value:.4g} is below its min {bound['min']}")
    return misses
