"""Paired comparison of learners: the cases of one seed share their data, so compare per seed.

For each config (a study's sweep point) and pair of learners, per metric: the mean of the per-seed
differences (a - b) with a 95% t-interval, a Wilcoxon signed-rank p-value (scipy), and a plain
statement ("svgd lower eshd than ensemble in 7 of 10 seeds, p=0.04"). Used by the terminal summary,
the parent run's metrics and the report: one definition.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.metric_names import COMPARED, lower_is_better

CASE_ID = re.compile(r"^(?P<config>.+)-s(?P<seed>\d+)-(?P<learner>[^-]+)$")
PREFERRED_ORDER = ("svgd", "ensemble")


def config_of(case_id: str) -> str:
    """``smoke-s3-svgd`` -> ``smoke``; ``paper-sf-s0-ensemble`` -> ``paper-sf``."""
    m = CASE_ID.match(case_id)
    return m.group("config") if m else case_id


@dataclass
class Paired:
    config: str
    a: str
    b: str
    metric: str
    n: int
    diff_mean: float
    ci_low: float
    ci_high: float
    p_value: float
    a_better: int  # seeds where a is better than b

    @property
    def statement(self) -> str:
        if self.n == 0:
            return f"{self.a} vs {self.b} on {self.metric}: no seed with both"
        word = "lower" if lower_is_better(self.metric) else "higher"
        p = "n/a" if math.isnan(self.p_value) else f"{self.p_value:.2g}"
        return (f"{self.a} {word} {self.metric} than {self.b} in {self.a_better} of {self.n} seeds, "
                f"mean difference {self.diff_mean:+.3g} (95% CI {self.ci_low:+.3g} to {self.ci_high:+.3g}), p={p}")

    def as_metrics(self) -> dict[str, float]:
        prefix = f"paired.{self.config}.{self.a}-{self.b}.{self.metric}"
        return {f"{prefix}.diff_mean": self.diff_mean, f"{prefix}.ci_low": self.ci_low,
                f"{prefix}.ci_high": self.ci_high, f"{prefix}.p_wilcoxon": self.p_value,
                f"{prefix}.n_pairs": float(self.n), f"{prefix}.{self.a}_better": float(self.a_better)}


def paired_comparisons(records: list[dict]) -> list[Paired]:
    """``records``: dicts with ``case_id``, ``learner``, ``seed`` and ``metrics`` (finished cases)."""
    table: dict[str, dict[str, dict[int, dict]]] = {}
    for r in records:
        if r.get("metrics"):
            table.setdefault(config_of(r["case_id"]), {}).setdefault(r["learner"], {})[int(r["seed"])] = r["metrics"]
    out = []
    for config, by_learner in sorted(table.items()):
        for a, b in itertools.combinations(ordered_learners(by_learner), 2):
            for metric in COMPARED:
                out.extend(_compare(config, a, b, metric, by_learner[a], by_learner[b]))
    return out


def ordered_learners(learners) -> list[str]:
    """svgd first, then ensemble, then the others by name (the order of tables, plots, pairs)."""
    return sorted(learners, key=lambda l: (PREFERRED_ORDER.index(l) if l in PREFERRED_ORDER else 99, l))


def t_interval(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for one value, 0 for no spread)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float(values.mean()) if n else math.nan, math.nan
    return float(values.mean()), float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def _compare(config, a, b, metric, ma: dict[int, dict], mb: dict[int, dict]) -> list[Paired]:
    seeds = sorted(s for s in set(ma) & set(mb) if metric in ma[s] and metric in mb[s])
    if not seeds:
        return []
    diff = np.array([ma[s][metric] - mb[s][metric] for s in seeds], dtype=float)
    n = len(diff)
    mean, half = t_interval(diff)
    p = float(stats.wilcoxon(diff).pvalue) if n > 1 and np.any(diff != 0) else math.nan
    better = int(np.sum(diff < 0)) if lower_is_better(metric) else int(np.sum(diff > 0))
    return [Paired(config, a, b, metric, n, mean, mean - half, mean + half, p, better)]
