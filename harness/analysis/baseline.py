"""Regression gate: compare a session's cases with a baseline's cases of the same seeds.

A baseline is a set of finished cases: a small YAML file written by ``--save-baseline PATH`` (meant
to be committed), or a session recorded in MLflow (``mlflow:RUN_ID``, the session's parent run;
``mlflow:latest``, the latest finished session of each experiment of this session).

The decision rule, per study sweep point ("config"), learner and posterior metric:

- Pairs: a current case and the baseline case with the same case id (so the same study, sweep
  point, seed and learner: the same ground truth and data) and the same config hash. A case whose
  hash differs is "not comparable" and is listed, never compared (the hash leaves out thresholds
  and ``regression``, which cannot change the numbers).
- Per pair, ``worse = current - baseline`` for a lower-is-better metric (eshd, negll), and
  ``baseline - current`` for a higher-is-better one (auroc, auprc); ``_mixture`` variants follow
  their metric.
- **Regression** when both hold: ``mean(worse) > min_effect`` (absolute, or "x%" of the baseline
  mean's magnitude; defaults in ``DEFAULT_MIN_EFFECT``, overridden by the study's
  ``regression: {metric: effect}``); and a paired test says the current cases are worse: a
  one-sided paired t-test of ``mean(worse) > 0`` *or* the exact one-sided sign-flip (permutation)
  test of the same gives ``p < ALPHA`` (0.05). One seed gives no p, so no regression.

Why this rule: the minimum effect keeps floating-point noise from being called a regression
(another worker count changes reduction order, and after 1000 steps that moves single cases
visibly); the paired tests keep a single unlucky seed from being one. Two tests, because each
misses what the other sees on 5 seeds (measured, docs/regression-gate.md): the t-test's p has no floor, so it can
flag a large change in 3 or 4 of 5 seeds, but one seed with a huge difference (the held-out
likelihoods are heavy-tailed) inflates its variance; the sign-flip test is exact and robust to
that, but cannot go below 1/2^n (5 seeds: 0.031, so only when every seed got worse; with 4 seeds
never). A Wilcoxon signed-rank test has the same floor (two-sided 0.0625 at 5 seeds). Taking
either test raises the tests' own false-positive rate to at most 2 x 0.05 per comparison under no
change; the minimum effect, which the measured noise never reached half of, is what keeps false
alarms away.
"""

from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from harness.analysis.compare import ordered_learners, t_interval
from harness.evaluation.registry import COMPARED, is_compared, lower_is_better
from harness.tracking import tags as T
from harness.tracking.records import CaseRecord

ALPHA = 0.05
# About 3.5 to 5 times the standard deviation of a 5-seed mean difference that reduction order alone
# causes on the smoke study (-n 0 vs -n 2, 15 seeds; docs/regression-gate.md): eshd 0.10, auroc
# 0.0055, auprc 0.015-0.020, negll_obs 4-7% and negll_intrv 2-4% of the mean. The held-out
# likelihoods are that noisy because one particle's poor fit moves the mixture a lot.
DEFAULT_MIN_EFFECT: dict[str, float | str] = {
    "eshd": 0.5,
    "auroc": 0.025,
    "auprc": 0.07,
    "negll_obs": "25%",
    "negll_intrv": "15%",
    # Against the exact posterior: 4-5 times the same noise measured on configs/exact_small.yaml
    # (-n 0 vs -n 2, 10 seeds x 4 configs, svgd and ensemble; docs/metrics.md, "Against the exact posterior"):
    # sd of a 5-seed mean difference edge_mae 0.004, graph_tv 0.013, graph_kl 12% of its mean. The
    # DiBS+ weights put almost all mass on one particle, and which one flips with reduction order,
    # so their variants are far noisier (0.024, 0.062, 69%) and get their own effects.
    "edge_mae": 0.02,
    "graph_tv": 0.05,
    "graph_kl": "50%",
    "edge_mae_mixture": 0.1,
    "graph_tv_mixture": 0.25,
    "graph_kl_mixture": "250%",
}
NOT_RECORDED = ("fit_s", "compile_s")  # machine-dependent: kept out of a baseline file
FORMAT = 1


class BaselineError(ValueError):
    """A baseline cannot be read; the message names the file (or run) and what was expected."""


@dataclass(frozen=True)
class BaselineCase:
    case_id: str
    learner: str
    seed: int
    config_hash: str
    metrics: dict[str, float]
    study: str = ""
    experiment: str = ""


@dataclass
class Baseline:
    source: str
    cases: dict[str, BaselineCase]
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------


def baseline_from_records(
    records: list[CaseRecord], source: str = "this session", meta: dict | None = None
) -> Baseline:
    """The finished cases of a session (records as the pytest plugin collects them)."""
    cases = {}
    for r in records:
        if not r.finished:
            continue
        metrics = {k: float(v) for k, v in r.metrics.items() if k not in NOT_RECORDED}
        cases[r.case_id] = BaselineCase(
            r.case_id, r.learner, int(r.seed), r.config_hash, metrics, r.study, r.experiment
        )
    return Baseline(source, cases, meta or {})


def save_baseline(baseline: Baseline, path: str | Path) -> Path:
    """Write a baseline as readable YAML: provenance first, then one entry per case."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **baseline.meta,
        "cases": {
            cid: {
                "study": c.study,
                "experiment": c.experiment,
                "learner": c.learner,
                "seed": c.seed,
                "config_hash": c.config_hash,
                "metrics": dict(sorted(c.metrics.items())),
            }
            for cid, c in sorted(baseline.cases.items())
        },
    }
    header = (
        "# Baseline of the regression gate (harness.analysis.baseline): per case, the metrics one session logged.\n"
        "# Refresh it on purpose, when a change is meant to move the numbers (docs/regression-gate.md).\n"
    )
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
    return path


def provenance(git_commit: str | None, versions: dict, command: list[str] | None = None) -> dict:
    return {
        "git_commit": git_commit or "unknown",
        "versions": dict(versions),
        "command": " ".join(command if command is not None else sys.argv),
    }


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_baseline(
    source: str, uri: str | None = None, experiments: list[str] = (), exclude_runs: set[str] = ()
) -> Baseline:
    """``PATH`` of a baseline file, ``mlflow:RUN_ID`` (a session's parent run) or ``mlflow:latest``
    (per experiment in ``experiments``, its latest FINISHED session other than ``exclude_runs``)."""
    if not source.startswith("mlflow:"):
        return load_file(Path(source))
    from harness.tracking.store import resolve_uri

    return load_mlflow(source.removeprefix("mlflow:"), uri or resolve_uri(None), experiments, set(exclude_runs))


def load_file(path: Path) -> Baseline:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the baseline file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BaselineError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("cases"), dict):
        raise BaselineError(
            f"{path}: expected a baseline file (format: {FORMAT}, cases: {{case id: ...}}), "
            "as written by --save-baseline"
        )
    cases = {}
    for cid, c in doc["cases"].items():
        try:
            metrics = {str(k): float(v) for k, v in c["metrics"].items()}
            cases[cid] = BaselineCase(
                cid,
                str(c["learner"]),
                int(c["seed"]),
                str(c["config_hash"]),
                metrics,
                str(c.get("study", "")),
                str(c.get("experiment", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BaselineError(
                f"{path}: key 'cases.{cid}': expected learner, seed, config_hash and a mapping "
                f"of metrics to numbers ({type(exc).__name__}: {exc})"
            ) from None
    meta = {k: v for k, v in doc.items() if k not in ("cases", "format")}
    return Baseline(str(path), cases, meta)


def load_mlflow(run_ref: str, uri: str, experiments: list[str], exclude_runs: set[str]) -> Baseline:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from harness.tracking.store import retry_locked

    client = MlflowClient(uri)
    if run_ref == "latest":
        parents = [
            p for name in experiments if (p := T.latest_session(client, name, finished_only=True, exclude=exclude_runs))
        ]
        if not parents:
            raise BaselineError(
                f"--baseline mlflow:latest: no finished earlier session of "
                f"{', '.join(experiments) or 'these experiments'} in {uri}"
            )
    else:
        try:
            parents = [retry_locked(client.get_run, run_ref)]
        except MlflowException as exc:
            raise BaselineError(f"--baseline mlflow:{run_ref}: no such run in {uri} ({exc.message})") from None
        if not T.is_session(parents[0]):
            raise BaselineError(
                f"--baseline mlflow:{run_ref}: not a session's parent run "
                "(expected the run tagged harness.role = session)"
            )
    cases = {}
    for parent in parents:
        for run in T.children(client, parent.info.experiment_id, parent.info.run_id, status="FINISHED"):
            t = run.data.tags
            if T.CASE_ID_TAG not in t:
                continue
            metrics = {k: v for k, v in run.data.metrics.items() if k not in NOT_RECORDED}
            cases[t[T.CASE_ID_TAG]] = BaselineCase(
                t[T.CASE_ID_TAG],
                t[T.LEARNER_TAG],
                int(t[T.SEED_TAG]),
                t.get(T.CONFIG_HASH_TAG, ""),
                metrics,
                t.get(T.STUDY_TAG, ""),
                "",
            )
    commits = sorted({p.data.tags.get(T.GIT_COMMIT_TAG, "unknown") for p in parents})
    source = "mlflow:" + ",".join(p.info.run_id for p in parents)
    return Baseline(source, cases, {"git_commit": ",".join(commits)})


# ---------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------


@dataclass
class Finding:
    """One config, learner and metric: current vs baseline over the paired seeds."""

    config: str
    learner: str
    metric: str
    seeds: list[int]
    baseline_mean: float
    current_mean: float
    diff_mean: float  # current - baseline
    ci_low: float
    ci_high: float
    p_value: float  # one-sided paired t-test that the current cases are worse
    p_signflip: float  # the exact one-sided sign-flip test of the same
    min_effect: float
    worse_seeds: list[int]
    regression: bool

    @property
    def n(self) -> int:
        return len(self.seeds)

    def line(self) -> str:
        verdict = "REGRESSION" if self.regression else "ok"
        if self.n < 2:
            test = "n=1: no interval, no test"
        else:
            test = (
                f"paired diff {self.diff_mean:+.4g} (95% CI {self.ci_low:+.4g} to {self.ci_high:+.4g}), "
                f"p={self.p_value:.2g} (paired t) / {self.p_signflip:.2g} (sign-flip), one-sided, n={self.n}"
            )
        worse = ", ".join(map(str, self.worse_seeds)) or "none"
        return (
            f"{verdict}: {self.config} {self.learner} {self.metric}: baseline {self.baseline_mean:.4g}, "
            f"now {self.current_mean:.4g}, {test}, min effect {self.min_effect:.3g}; worse in seeds: {worse}"
        )


@dataclass
class GateResult:
    baseline: Baseline
    findings: list[Finding] = field(default_factory=list)
    not_comparable: list[str] = field(default_factory=list)
    without_baseline: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or not self.findings

    def lines(self) -> list[str]:
        out = [f"baseline: {self.baseline.source} (git commit {self.baseline.meta.get('git_commit', 'unknown')})"]
        out += [f.line() for f in self.findings]
        out += [f"not comparable: {m}" for m in self.not_comparable]
        if self.without_baseline:
            out.append(f"no baseline case for: {', '.join(self.without_baseline)}")
        if not self.findings:
            out.append(
                "the gate compared nothing: no case of this session has a comparable baseline case; "
                "record one with --save-baseline"
            )
        out.append(f"{len(self.regressions)} regression(s) in {len(self.findings)} comparison(s)")
        return out


def effect_threshold(effect: float | str, baseline_mean: float) -> float:
    """An absolute minimum effect; ``"5%"`` is 5% of the baseline mean's magnitude."""
    if isinstance(effect, str):
        return float(effect.rstrip("%")) / 100 * abs(baseline_mean)
    return float(effect)


def compare_with_baseline(
    records: list[CaseRecord], baseline: Baseline, min_effects: dict[str, dict] | None = None
) -> GateResult:
    """``records``: the session's case records; ``min_effects``: per case id, the study's
    ``regression`` section."""
    result = GateResult(baseline)
    groups: dict[tuple[str, str], list[tuple[CaseRecord, BaselineCase]]] = {}
    for r in sorted(records, key=lambda r: r.case_id):
        if not r.finished:
            continue  # failed or killed: its own test already fails
        base = baseline.cases.get(r.case_id)
        if base is None:
            result.without_baseline.append(r.case_id)
        elif base.config_hash != r.config_hash:
            result.not_comparable.append(f"{r.case_id}: config hash {r.config_hash} (baseline {base.config_hash})")
        else:
            groups.setdefault((r.config, r.learner), []).append((r, base))
    order = {l: i for i, l in enumerate(ordered_learners({k[1] for k in groups}))}
    for (config, learner), pairs in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        effects = {**DEFAULT_MIN_EFFECT, **((min_effects or {}).get(pairs[0][0].case_id) or {})}
        metrics = sorted(
            {m for r, b in pairs for m in r.metrics if is_compared(m) and m in b.metrics}, key=_metric_order
        )
        for metric in metrics:
            finding = _compare_metric(config, learner, metric, pairs, effects)
            if finding:
                result.findings.append(finding)
    return result


def _metric_order(metric: str) -> tuple:
    base = metric.removesuffix("_mixture")
    return (metric != base, COMPARED.index(base))


def _compare_metric(config, learner, metric, pairs, effects) -> Finding | None:
    rows = [
        (int(r.seed), float(r.metrics[metric]), b.metrics[metric])
        for r, b in pairs
        if metric in r.metrics and math.isfinite(r.metrics[metric]) and math.isfinite(b.metrics[metric])
    ]
    if not rows:
        return None
    seeds = [s for s, _, _ in rows]
    current = np.array([c for _, c, _ in rows])
    base = np.array([b for _, _, b in rows])
    diff = current - base
    worse = diff if lower_is_better(metric) else -diff
    mean = float(diff.mean())
    low, high, p = paired_statistics(worse)
    p_flip = signflip_p(worse)
    if not lower_is_better(metric):  # the interval of worse, turned back into current - baseline
        low, high = 0.0 - high, 0.0 - low  # (0.0 - x, not -x: no "-0" in the output)
    threshold = effect_threshold(
        effects.get(metric, effects.get(metric.removesuffix("_mixture"), 0.0)), float(base.mean())
    )
    # p is nan (never < ALPHA) for one seed
    regression = float(worse.mean()) > threshold and (p < ALPHA or p_flip < ALPHA)
    return Finding(
        config,
        learner,
        metric,
        seeds,
        float(base.mean()),
        float(current.mean()),
        mean,
        low,
        high,
        p,
        p_flip,
        threshold,
        [s for s, w in zip(seeds, worse) if w > 0],
        regression,
    )


def paired_statistics(worse: np.ndarray) -> tuple[float, float, float]:
    """95% two-sided t-interval of the mean of ``worse`` and the one-sided p that it is above 0."""
    mean, half = t_interval(worse)
    if len(worse) < 2:
        return math.nan, math.nan, math.nan
    if half == 0:
        return mean, mean, 0.0 if mean > 0 else 1.0
    return mean - half, mean + half, float(stats.ttest_1samp(worse, 0.0, alternative="greater").pvalue)


def signflip_p(worse: np.ndarray) -> float:
    """Exact one-sided sign-flip (permutation) test of mean(worse) > 0: the share of the 2^n sign
    patterns of |worse| whose mean is at least the observed one (scipy enumerates them all up to 16
    seeds, and samples 65536 patterns with a fixed seed beyond)."""
    if len(worse) < 2:
        return math.nan
    return float(
        stats.permutation_test(
            (worse,), np.mean, permutation_type="samples", alternative="greater", n_resamples=2**16, rng=0
        ).pvalue
    )


def parse_source(text: str) -> str:
    """Check the form of a ``--baseline`` value early (before any case runs)."""
    if text.startswith("mlflow:"):
        ref = text.removeprefix("mlflow:")
        if ref != "latest" and not re.fullmatch(r"[0-9a-f]{32}", ref):
            raise BaselineError(f"--baseline {text}: expected mlflow:latest or mlflow:RUN_ID (32 hex digits)")
        return text
    load_file(Path(text))  # fails now, naming the file, if it cannot be used
    return text
