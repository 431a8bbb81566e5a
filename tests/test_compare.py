"""The paired comparison of learners (harness.analysis.compare) on hand-made per-seed numbers, with the
statistics computed here by hand: mean difference, t-interval, exact Wilcoxon p, direction."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.analysis.compare import paired_comparisons
from harness.tracking.records import CaseRecord

T_975_DF4 = 2.7764451051977934  # Student's t, 97.5% quantile, 4 degrees of freedom (tables: 2.776)


def records(metric: str, a: list[float], b: list[float], learners=("svgd", "ensemble")) -> list[CaseRecord]:
    out = []
    for learner, values in zip(learners, (a, b)):
        out += [
            CaseRecord(case_id=f"st-s{s}-{learner}", learner=learner, seed=s, metrics={metric: v})
            for s, v in enumerate(values)
        ]
    return out


B = [3.0, 4.0, 2.0, 5.0, 1.0]


@pytest.mark.parametrize("metric, a_better", [("eshd", 0), ("auroc", 5)])
def test_differences_all_one_way(metric, a_better):
    a = [b + d for b, d in zip(B, [1.0, 2.0, 3.0, 4.0, 6.0])]  # svgd - ensemble = 1, 2, 3, 4, 6
    (p,) = paired_comparisons(records(metric, a, B))
    half = T_975_DF4 * math.sqrt(14.8 / 4) / math.sqrt(5)
    assert (p.config, p.a, p.b, p.n) == ("st", "svgd", "ensemble", 5)
    assert p.diff_mean == pytest.approx(3.2)
    assert (p.ci_low, p.ci_high) == (pytest.approx(3.2 - half), pytest.approx(3.2 + half))
    # exact signed-rank test: W- = 0 happens for 1 of the 2^5 sign patterns; two-sided 2/32
    assert p.p_value == pytest.approx(2 / 32)
    assert p.a_better == a_better  # higher auroc is better: svgd better in all 5 seeds
    word = "lower" if metric == "eshd" else "higher"
    assert p.statement.startswith(f"svgd {word} {metric} than ensemble in {a_better} of 5 seeds, mean difference +3.2")


def test_one_seed_against_the_others():
    a = [b + d for b, d in zip(B, [-1.0, 2.0, 3.0, 4.0, 6.0])]
    (p,) = paired_comparisons(records("eshd", a, B))
    # W- = rank of |-1| = 1: patterns with W- <= 1 are 2 of 32; two-sided 4/32
    assert p.p_value == pytest.approx(4 / 32) and p.a_better == 1 and p.diff_mean == pytest.approx(2.8)


def test_one_pair_has_no_interval_and_no_test():
    (p,) = paired_comparisons(records("eshd", [2.0], [1.0]))
    assert p.n == 1 and p.diff_mean == 1.0 and math.isnan(p.ci_low) and math.isnan(p.p_value)


def test_one_pair_says_so_instead_of_printing_nan():
    (p,) = paired_comparisons(records("eshd", [2.0], [1.0]))
    assert p.statement == "svgd lower eshd than ensemble in 0 of 1 seeds, difference +1 (n=1: no interval, no test)"
    assert "nan" not in p.statement


@pytest.mark.parametrize("shift, words", [(2.0, "the same difference +2"), (0.0, "no difference in any seed")])
def test_differences_without_spread_are_reported_as_such(shift, words):
    (p,) = paired_comparisons(records("eshd", [b + shift for b in B], B))
    assert (
        p.statement == f"svgd lower eshd than ensemble in 0 of 5 seeds: {words} (zero variance: no interval, no test)"
    )
    assert math.isnan(p.p_value)


def test_wilcoxon_counts_the_non_zero_pairs_and_names_the_smallest_possible_p():
    a = [b + d for b, d in zip(B, [0.0, 0.0, 1.0, 2.0, 3.0])]
    (p,) = paired_comparisons(records("eshd", a, B))
    # zeros dropped: 3 ranked pairs, all one way: exact two-sided p = 2 / 2^3 = 0.25, also the smallest
    assert (p.n, p.n_nonzero) == (5, 3) and p.p_value == pytest.approx(0.25) and p.min_p == 0.25
    assert p.statement.endswith("Wilcoxon p=0.25 on 3 non-zero pairs (smallest possible 0.25)")
    (five,) = paired_comparisons(records("eshd", [b + d for b, d in zip(B, [1.0, 2.0, 3.0, 4.0, 6.0])], B))
    assert five.min_p == 0.0625 and five.as_metrics()["paired.st.svgd-ensemble.eshd.p_min"] == 0.0625


def test_runs_of_other_settings_are_never_paired_with_each_other():
    """The same config name and seeds with two comparison hashes (a full and a shortened session):
    two comparisons, each of its own runs; a later record of a case replaces an earlier one."""
    full = [replace(r, comparison_hash="aaaaaaaa11") for r in records("eshd", [b + 1.0 for b in B], B)]
    short = [replace(r, comparison_hash="bbbbbbbb22") for r in records("eshd", [b - 2.0 for b in B], B)]
    rerun = replace(full[0], metrics={"eshd": B[0] + 3.0})  # svgd seed 0 again, later
    by_label = {p.config: p for p in paired_comparisons(full + short + [rerun])}
    assert set(by_label) == {"st (aaaaaaaa)", "st (bbbbbbbb)"}
    assert by_label["st (bbbbbbbb)"].diff_mean == pytest.approx(-2.0) and by_label["st (bbbbbbbb)"].n == 5
    assert (
        by_label["st (aaaaaaaa)"].diff_mean == pytest.approx((3.0 + 4 * 1.0) / 5) and by_label["st (aaaaaaaa)"].n == 5
    )
    # one hash only: the plain config name
    assert {p.config for p in paired_comparisons(full)} == {"st"}


def test_pairs_by_the_runs_seed_and_learner_not_by_parsing_case_ids():
    """A learner whose name contains '-' (nothing forbids it) pairs with the others of its config;
    a regex over case ids took 'my-learner' as part of the config and compared nothing."""
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 5.0]
    (p,) = paired_comparisons(records("eshd", a, b, learners=("my-learner", "svgd")))
    assert (p.config, p.a, p.b, p.n, p.a_better) == ("st", "svgd", "my-learner", 3, 0)
    assert p.diff_mean == pytest.approx(np.mean(np.subtract(b, a)))


def test_config_label_strips_only_the_seed_and_learner():
    from harness.tracking.records import config_label

    assert config_label("grid-sf-10-s1-my-learner", 1, "my-learner") == "grid-sf-10"
    assert config_label("a-s1-b-s2-svgd", 2, "svgd") == "a-s1-b"
