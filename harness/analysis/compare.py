"""Paired comparison of learners: the cases of one seed share their data, so compare per seed.

For each config (a study's sweep point) and pair of learners, per metric: the mean of the per-seed
differences (a - b) with a 95% t-interval, a Wilcoxon signed-rank p-value (scipy, exact for small
n; zero differences dropped, so its n is the non-zero pairs) with the smallest p that n allows, and
a plain statement ("svgd lower eshd than ensemble in 7 of 10 seeds, ..."). One pair, or
differences without spread, get no interval and no test, and say so. Used by the terminal
summary, the parent run's metrics and the report: one definition.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.evaluation.registry import COMPARED, MIXTURE, lower_is_better

PREFERRED_ORDER = ("svgd", "ensemble")


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
    n_nonzero: int = 0  # pairs with a non-zero difference: the pairs the Wilcoxon test ranks
    sd: float = math.nan  # standard deviation of the differences (ddof 1)

    @property
    def min_p(self) -> float:
        """The smallest two-sided p the exact Wilcoxon test can give with ``n_nonzero`` pairs:
        every difference one way, 2 / 2^n (5 pairs: 0.0625, so p < 0.05 needs 6 or more)."""
        return 2.0 / 2**self.n_nonzero if self.n_nonzero else math.nan

    @property
    def statement(self) -> str:
        if self.n == 0:
            return f"{self.a} vs {self.b} on {self.metric}: no seed with both"
        word = "lower" if lower_is_better(self.metric) else "higher"
        head = f"{self.a} {word} {self.metric} than {self.b} in {self.a_better} of {self.n} seeds"
        if self.n == 1:
            return f"{head}, difference {self.diff_mean:+.3g} (n=1: no interval, no test)"
        if self.sd == 0:
            same = "no difference in any seed" if self.diff_mean == 0 else f"the same difference {self.diff_mean:+.3g}"
            return f"{head}: {same} (zero variance: no interval, no test)"
        test = (
            f"Wilcoxon p={self.p_value:.2g} on {self.n_nonzero} non-zero pairs (smallest possible {self.min_p:.2g})"
            if self.n_nonzero > 1
            else f"no Wilcoxon test ({self.n_nonzero} non-zero pair)"
        )
        return (
            f"{head}, mean difference {self.diff_mean:+.3g} (95% CI {self.ci_low:+.3g} to {self.ci_high:+.3g}), {test}"
        )

    def as_metrics(self) -> dict[str, float]:
        prefix = f"paired.{self.config}.{self.a}-{self.b}.{self.metric}"
        return {
            f"{prefix}.diff_mean": self.diff_mean,
            f"{prefix}.ci_low": self.ci_low,
            f"{prefix}.ci_high": self.ci_high,
            f"{prefix}.p_wilcoxon": self.p_value,
            f"{prefix}.n_pairs": float(self.n),
            f"{prefix}.{self.a}_better": float(self.a_better),
            f"{prefix}.n_nonzero": float(self.n_nonzero),
            f"{prefix}.p_min": self.min_p,
        }


def paired_comparisons(records) -> list[Paired]:
    """``records``: case records (``harness.tracking.records.CaseRecord``, or anything with its
    ``config``, ``learner``, ``seed``, ``metrics`` and ``comparison_hash``; the config comes from
    the runs' tags, not from parsing case ids), ``comparison_hash`` None in runs older than it
    (those form one group). Cases are paired only
    within one (config, comparison hash): runs of the same config name with other settings (a
    shortened ``--override`` session, say) are a separate comparison, labelled ``config (hash)``.
    A later record of the same learner and seed in a group replaces an earlier one."""
    table: dict[tuple[str, str | None], dict[str, dict[int, dict]]] = {}
    for r in records:
        if r.metrics:
            group = table.setdefault((r.config, r.comparison_hash), {})
            group.setdefault(r.learner, {})[int(r.seed)] = r.metrics
    hashes_of: dict[str, int] = {}
    for config, _ in table:
        hashes_of[config] = hashes_of.get(config, 0) + 1
    out = []
    for (config, key), by_learner in sorted(table.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        label = config if hashes_of[config] == 1 else f"{config} ({str(key)[:8]})"
        for a, b in itertools.combinations(ordered_learners(by_learner), 2):
            for metric in COMPARED + MIXTURE:
                out.extend(_compare(label, a, b, metric, by_learner[a], by_learner[b]))
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
    nonzero = int(np.count_nonzero(diff))
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    # scipy's default drops zero differences ("wilcox"): the test ranks the non-zero pairs only
    p = float(stats.wilcoxon(diff).pvalue) if nonzero > 1 and sd > 0 else math.nan
    better = int(np.sum(diff < 0)) if lower_is_better(metric) else int(np.sum(diff > 0))
    return [Paired(config, a, b, metric, n, mean, mean - half, mean + half, p, better, nonzero, sd)]
