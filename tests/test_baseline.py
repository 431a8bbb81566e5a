"""The baseline gate's rule and file (harness.analysis.baseline), on hand-made per-seed numbers whose
statistics are computed here by hand."""

from __future__ import annotations

import math

import pytest
import yaml

from harness.analysis import baseline as bl
from harness.study.loading import StudyFileError, load_cases
from harness.tracking.records import CaseRecord

T_975_DF4 = 2.7764451051977934  # 97.5% quantile of Student's t with 4 degrees of freedom (tables: 2.776)


def t4_sf(t: float) -> float:
    """Upper tail of Student's t with 4 degrees of freedom, in closed form (not scipy)."""
    x = t * t / 4
    return 0.5 - (3 / 8) * (t / math.sqrt(1 + x)) * (1 - t * t / (12 * (1 + x)))


def records(
    values: dict[int, float], metric: str = "eshd", learner: str = "svgd", config_hash: str = "h"
) -> list[CaseRecord]:
    return [
        CaseRecord(
            case_id=f"st-s{s}-{learner}",
            learner=learner,
            seed=s,
            config_hash=config_hash,
            status="FINISHED",
            metrics={metric: v},
        )
        for s, v in values.items()
    ]


def baseline_of(values: dict[int, float], metric: str = "eshd", learner: str = "svgd", config_hash: str = "h"):
    return bl.baseline_from_records(records(values, metric, learner, config_hash), meta={"git_commit": "abc"})


BASE = {0: 3.0, 1: 4.0, 2: 2.0, 3: 5.0, 4: 1.0}
WORSE = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 6.0}  # per seed: current - baseline for eshd


def test_paired_numbers_match_a_hand_computation():
    current = {s: BASE[s] + WORSE[s] for s in BASE}
    (f,) = bl.compare_with_baseline(records(current), baseline_of(BASE)).findings
    mean, sd = 3.2, math.sqrt(14.8 / 4)  # worse = 1, 2, 3, 4, 6: squared deviations sum to 14.8
    half = T_975_DF4 * sd / math.sqrt(5)
    assert (f.config, f.learner, f.metric, f.seeds) == ("st", "svgd", "eshd", [0, 1, 2, 3, 4])
    assert f.baseline_mean == pytest.approx(3.0) and f.current_mean == pytest.approx(6.2)
    assert f.diff_mean == pytest.approx(mean)
    assert (f.ci_low, f.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert f.p_value == pytest.approx(t4_sf(mean / (sd / math.sqrt(5))), rel=1e-9)  # 0.0102
    assert f.p_signflip == pytest.approx(1 / 32)  # only the observed sign pattern has a mean as large
    assert f.worse_seeds == [0, 1, 2, 3, 4] and f.regression
    assert f.line().startswith(
        "REGRESSION: st svgd eshd: baseline 3, now 6.2, paired diff +3.2 (95% CI +0.8116 to +5.588)"
    )
    assert "worse in seeds: 0, 1, 2, 3, 4" in f.line()


def test_higher_is_better_metrics_count_a_drop_as_worse():
    base = {s: 0.9 for s in BASE}
    drop = {s: 0.9 - w / 100 for s, w in WORSE.items()}  # auroc down by 0.01 .. 0.06
    (f,) = bl.compare_with_baseline(records(drop, "auroc"), baseline_of(base, "auroc")).findings
    half = T_975_DF4 * math.sqrt(14.8 / 4) / 100 / math.sqrt(5)
    assert f.diff_mean == pytest.approx(-0.032)
    assert (f.ci_low, f.ci_high) == (pytest.approx(-0.032 - half), pytest.approx(-0.032 + half))
    assert f.worse_seeds == [0, 1, 2, 3, 4] and f.regression  # 0.032 > the default 0.02
    rise = {s: 0.9 + w / 100 for s, w in WORSE.items()}
    (g,) = bl.compare_with_baseline(records(rise, "auroc"), baseline_of(base, "auroc")).findings
    assert g.worse_seeds == [] and not g.regression and g.p_value == pytest.approx(1 - f.p_value)
    assert g.p_signflip == pytest.approx(1.0)


def test_mixture_metrics_follow_their_metric():
    base = {s: 0.9 for s in BASE}
    drop = {s: 0.8 for s in BASE}
    (f,) = bl.compare_with_baseline(records(drop, "auroc_mixture"), baseline_of(base, "auroc_mixture")).findings
    assert f.regression and f.worse_seeds == [0, 1, 2, 3, 4]
    assert f.p_value == 0.0  # a constant shift has no spread: p = 0, not nan


def test_each_part_of_the_rule_is_needed():
    worse = {s: BASE[s] + WORSE[s] / 10 for s in BASE}  # mean +0.32 < the default min effect 0.5
    (small,) = bl.compare_with_baseline(records(worse), baseline_of(BASE)).findings
    assert not small.regression and small.p_value < bl.ALPHA
    # the study's own effect size (regression: {eshd: 0.3}) makes it one
    effects = {r.case_id: {"eshd": 0.3} for r in records(worse)}
    (strict,) = bl.compare_with_baseline(records(worse), baseline_of(BASE), effects).findings
    assert strict.regression and strict.min_effect == 0.3
    # one bad seed: large mean, but neither paired test calls it
    one = {**BASE, 0: BASE[0] + 5.0}
    (lucky,) = bl.compare_with_baseline(records(one), baseline_of(BASE)).findings
    assert lucky.diff_mean == pytest.approx(1.0) and lucky.p_value > bl.ALPHA and not lucky.regression
    assert lucky.worse_seeds == [0] and lucky.p_signflip == pytest.approx(0.5)  # zeros: either sign


def test_every_seed_worse_with_one_outlier_is_caught_by_the_sign_flip_test():
    worse = {s: BASE[s] + w for s, w in zip(BASE, [1.0, 1.0, 1.0, 1.0, 40.0])}
    (f,) = bl.compare_with_baseline(records(worse), baseline_of(BASE)).findings
    sd = math.sqrt((4 * 7.8**2 + 31.2**2) / 4)  # the outlier inflates the t-test's variance
    assert f.p_value == pytest.approx(t4_sf(8.8 / (sd / math.sqrt(5))), rel=1e-9) and f.p_value > bl.ALPHA
    assert f.p_signflip == pytest.approx(1 / 32) and f.regression
    assert "p=0.16 (paired t) / 0.031 (sign-flip), one-sided, n=5" in f.line()


def test_relative_min_effect_is_a_share_of_the_baseline_mean():
    base = {s: -200.0 for s in BASE}  # magnitude counts: 5% of |-200| = 10
    effects = {f"st-s{s}-svgd": {"negll_obs": "5%"} for s in BASE}
    within = {s: -200.0 + 9.0 + s * 0.1 for s in BASE}
    beyond = {s: -200.0 + 11.0 + s * 0.1 for s in BASE}
    (a,) = bl.compare_with_baseline(records(within, "negll_obs"), baseline_of(base, "negll_obs"), effects).findings
    (b,) = bl.compare_with_baseline(records(beyond, "negll_obs"), baseline_of(base, "negll_obs"), effects).findings
    assert a.min_effect == pytest.approx(10.0) and not a.regression and b.regression


def test_one_seed_is_reported_without_interval_or_test():
    (f,) = bl.compare_with_baseline(records({0: 9.0}), baseline_of({0: 1.0})).findings
    assert f.n == 1 and math.isnan(f.p_value) and math.isnan(f.p_signflip) and math.isnan(f.ci_low)
    assert not f.regression
    assert "n=1: no interval, no test" in f.line()


def test_changed_config_hash_is_not_comparable_and_an_empty_gate_fails():
    result = bl.compare_with_baseline(records(BASE, config_hash="new"), baseline_of(BASE, config_hash="old"))
    assert result.findings == [] and result.failed
    assert result.not_comparable[0] == "st-s0-svgd: config hash new (baseline old)"
    assert any("compared nothing" in line for line in result.lines())
    other = bl.compare_with_baseline(records(BASE, learner="ensemble"), baseline_of(BASE))
    assert other.without_baseline == [f"st-s{s}-ensemble" for s in range(5)] and other.failed


def test_failed_cases_and_non_finite_values_are_left_out():
    current = records({s: BASE[s] + WORSE[s] for s in BASE})
    current[0].status = "FAILED"
    current[1].metrics["eshd"] = math.nan
    (f,) = bl.compare_with_baseline(current, baseline_of(BASE)).findings
    assert f.seeds == [2, 3, 4]


def test_baseline_file_round_trip(tmp_path):
    recs = records(BASE) + records({0: 0.5}, "auroc", "ensemble")
    recs[0].metrics["fit_s"] = 12.0  # machine-dependent: not recorded
    recs.append(CaseRecord(case_id="st-s9-svgd", learner="svgd", seed=9, config_hash="h", status="FAILED"))
    meta = bl.provenance("abc123", {"dibs_version": "1.3.3"}, ["pytest", "benchmarks"])
    path = bl.save_baseline(bl.baseline_from_records(recs, meta=meta), tmp_path / "b" / "base.yaml")
    doc = yaml.safe_load(path.read_text())
    assert doc["git_commit"] == "abc123" and doc["command"] == "pytest benchmarks" and doc["format"] == 1
    assert doc["cases"]["st-s0-svgd"] == {
        "study": "",
        "experiment": "",
        "learner": "svgd",
        "seed": 0,
        "config_hash": "h",
        "metrics": {"eshd": 3.0},
    }
    back = bl.load_baseline(str(path))
    assert set(back.cases) == {f"st-s{s}-svgd" for s in range(5)} | {"st-s0-ensemble"}
    assert back.cases["st-s0-ensemble"].metrics == {"auroc": 0.5}
    assert back.meta["versions"] == {"dibs_version": "1.3.3"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cases: []\n", "expected a baseline file"),
        ("format: 1\ncases: {a-s0-svgd: {learner: svgd, seed: 0, metrics: {eshd: 1}}}\n", "key 'cases.a-s0-svgd'"),
        (
            "format: 1\ncases: {a-s0-svgd: {learner: svgd, seed: 0, config_hash: h, metrics: {eshd: x}}}\n",
            "key 'cases.a-s0-svgd'",
        ),
        ("format: [1\n", "not valid YAML"),
    ],
)
def test_a_bad_baseline_file_is_named(tmp_path, text, expected):
    path = tmp_path / "base.yaml"
    path.write_text(text)
    with pytest.raises(bl.BaselineError, match=f"^{path}: .*{expected}"):
        bl.parse_source(str(path))


def test_baseline_sources_are_checked_before_use(tmp_path):
    with pytest.raises(bl.BaselineError, match="cannot read the baseline file"):
        bl.parse_source(str(tmp_path / "missing.yaml"))
    with pytest.raises(bl.BaselineError, match="expected mlflow:latest or mlflow:RUN_ID"):
        bl.parse_source("mlflow:last")
    assert bl.parse_source("mlflow:latest") == "mlflow:latest"


def test_study_regression_key_is_validated_and_left_out_of_the_hash(write_study):
    study = yaml.safe_load((pytest.importorskip("tests.conftest").ROOT / "configs" / "smoke.yaml").read_text())
    plain = load_cases([write_study(study, "a.yaml")])[0]
    study["regression"] = {"eshd": 0.3, "negll_obs": "5%"}
    study["thresholds"]["svgd"]["eshd"]["max"] = 5.0
    gated = load_cases([write_study(study, "b.yaml")])[0]
    assert gated.config["regression"] == {"eshd": 0.3, "negll_obs": "5%"}
    assert gated.config_hash == plain.config_hash  # bounds and effects cannot change the numbers
    study["inference"]["steps"] = 999
    assert load_cases([write_study(study, "c.yaml")])[0].config_hash != plain.config_hash
    study["regression"] = {"eshd": "half"}
    with pytest.raises(StudyFileError, match=r"c\.yaml: key 'regression\.eshd': .*expected a number >= 0"):
        load_cases([write_study(study, "c.yaml")])
    study["regression"] = {"fit_s": 1.0}
    with pytest.raises(StudyFileError, match=r"key 'regression\.fit_s': not a metric the baseline gate compares"):
        load_cases([write_study(study, "c.yaml")])


def test_the_paired_t_test_alone_can_call_a_regression():
    """Four seeds clearly worse and one a little better: the exact sign-flip test cannot go below
    2/32 = 0.0625 (flipping the better seed gives a larger mean), the t-test can (p = 0.0099). A
    rule with the sign-flip test alone would miss this one."""
    worse = {s: BASE[s] + w for s, w in zip(BASE, [2.0, 2.0, 2.0, 2.0, -0.1])}
    (f,) = bl.compare_with_baseline(records(worse), baseline_of(BASE)).findings
    sd = math.sqrt((4 * 0.42**2 + 1.68**2) / 4)
    assert f.p_value == pytest.approx(t4_sf(1.58 / (sd / math.sqrt(5))), rel=1e-9) and f.p_value < bl.ALPHA
    assert f.p_signflip == pytest.approx(2 / 32) and f.p_signflip > bl.ALPHA
    assert f.regression and f.worse_seeds == [0, 1, 2, 3]


# the default minimum effects as docs/regression-gate.md and docs/metrics.md state them; a metric's
# _mixture variant takes its own default where one is stated, else its metric's
DOCUMENTED = {
    "eshd": 0.5,
    "auroc": 0.025,
    "auprc": 0.07,
    "negll_obs": "25%",
    "negll_intrv": "15%",
    "edge_mae": 0.02,
    "graph_tv": 0.05,
    "graph_kl": "50%",
    "edge_mae_mixture": 0.1,
    "graph_tv_mixture": 0.25,
    "graph_kl_mixture": "250%",
}


@pytest.mark.parametrize("metric", sorted({*bl.COMPARED, *(f"{m}_mixture" for m in bl.COMPARED)}))
def test_each_metric_is_gated_at_its_documented_minimum_effect(metric):
    """A constant shift (every seed equally worse: both paired tests give p = 0) is a regression just
    above the documented minimum effect and none just below it."""
    effect = DOCUMENTED.get(metric, DOCUMENTED[metric.removesuffix("_mixture")])
    base_value = 100.0 if isinstance(effect, str) else 0.5
    threshold = float(effect.rstrip("%")) / 100 * base_value if isinstance(effect, str) else effect
    direction = 1 if bl.lower_is_better(metric) else -1
    verdicts = {}
    for factor in (0.95, 1.05):
        current = {s: base_value + direction * factor * threshold for s in BASE}
        (f,) = bl.compare_with_baseline(
            records(current, metric), baseline_of({s: base_value for s in BASE}, metric)
        ).findings
        assert f.min_effect == pytest.approx(threshold)
        verdicts[factor] = f.regression
    assert verdicts == {0.95: False, 1.05: True}
