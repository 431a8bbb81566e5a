"""The end-of-session view of the paired comparison: a compact table and only the significant
statements (every statement with -v and in the report)."""

from __future__ import annotations

from harness.analysis.summary import paired_lines, paired_overview
from harness.tracking.records import CaseRecord


def records(study: str, values: dict[str, list[dict]]) -> list[CaseRecord]:
    return [
        CaseRecord(case_id=f"{study}-s{s}-{learner}", learner=learner, seed=s, study=study, metrics=m)
        for learner, per_seed in values.items()
        for s, m in enumerate(per_seed)
    ]


def test_a_table_per_pair_and_only_the_significant_statements():
    # svgd's eshd below ensemble's in all 8 seeds (Wilcoxon p = 2 / 2^8); auroc differences either way
    svgd = [{"eshd": 1.0 + s, "auroc": 0.80 + (0.01 if s % 2 else -0.01), "negll_obs": 10.0} for s in range(8)]
    ensemble = [{"eshd": 2.0 + s + 0.1 * s, "auroc": 0.80, "negll_obs": 10.0} for s in range(8)]
    recs = records("st", {"svgd": svgd, "ensemble": ensemble})
    text = paired_overview(recs)
    header, row = text.splitlines()[:2]
    assert header.split() == ["config", "pair", "seeds", "eshd", "diff", "auroc", "diff"]
    assert row.split()[:7] == ["st", "svgd", "-", "ensemble", "8", "-1.35", "svgd"]  # -(1 + 0.1 * mean(0..7))
    significant = [line for line in text.splitlines() if line.startswith("st: ")]
    assert significant == [
        "st: "
        + next(
            line.removeprefix("st: ")
            for line in paired_lines(recs).splitlines()
            if line.startswith("st: svgd lower eshd than")
        )
    ]
    assert "of 3 comparisons" in text  # eshd, auroc, negll_obs (no spread: no test)
    assert len(paired_lines(recs).splitlines()) == 3


def test_nothing_significant_says_so_and_no_pair_gives_nothing():
    recs = records("st", {"svgd": [{"eshd": 1.0}, {"eshd": 3.0}], "ensemble": [{"eshd": 2.0}, {"eshd": 2.0}]})
    assert "no difference significant at Wilcoxon p < 0.05 in 1 comparisons" in paired_overview(recs)
    assert paired_overview(records("st", {"svgd": [{"eshd": 1.0}]})) == ""
