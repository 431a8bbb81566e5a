"""A report with plots, rebuilt from what the runs store (plots are kept out of the runs).

    python -m harness report --experiment dibs_vs_ensembles [--out DIR] [--parent RUN_ID | --all-sessions] [--filter "..."]

Reads the finished case runs of one session of an experiment (the latest, or ``--parent``; every
session with ``--all-sessions``; optionally an MLflow search filter too) and says which it read;
their metrics, metric histories and artifacts, using only safe formats (``.npz`` with
``allow_pickle=False``, YAML ``safe_load``; the pickles are never opened), and writes into
``DIR`` (default ``reports/<experiment>/``):

- ``report.md`` and a self-contained ``report.html`` (images embedded): per config, a table of
  learner x metric (mean ± sd over seeds, n seeds) and the paired comparison of learners;
- per config: ``<config>_metrics.png`` (boxplots by learner, seeds as points),
  ``<config>_roc.png`` (ROC of the edge marginals per learner, seeds pooled),
  ``<config>_edges.png`` (for one seed: the true adjacency beside each learner's edge
  probabilities), when the runs have them ``<config>_convergence.png``, and in exact-posterior
  studies ``<config>_exact.png`` (each learner's edge marginals against the exact ones, seeds
  pooled; the table then also holds the exact posterior's own ``exact_eshd`` and ``exact_auroc``);
- a history section: every session of the experiment in time order (``harness.analysis.history``), and
  ``history.png``.

A "config" is a study at one sweep point: the case id without ``-s<seed>-<learner>``. Runs of one
config name with different settings (e.g. a shortened ``--override`` session read with
``--all-sessions``) differ in their ``comparison_hash`` tag and get a section each.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from harness.analysis.compare import COMPARED, ordered_learners, paired_comparisons  # noqa: E402
from harness.analysis.history import fetch_history, history_table, plot_history  # noqa: E402
from harness.evaluation.metrics import acyclic_part, edge_marginals, off_diagonal  # noqa: E402
from harness.models.posterior import Posterior  # noqa: E402
from harness.tracking import tags as T  # noqa: E402
from harness.tracking.records import config_label  # noqa: E402
from harness.tracking.store import retry_locked  # noqa: E402

BOXPLOT_METRICS = (
    ("eshd", "expected SHD (lower is better)"),
    ("auroc", "AUROC of edge marginals (higher is better)"),
    ("negll_obs", "neg. log-lik., held-out obs. (lower is better)"),
    ("negll_intrv", "neg. log-lik., interventional (lower is better)"),
)
TABLE_METRICS = (
    "eshd",
    "auroc",
    "auroc_diag",
    "auprc",
    "n_edges",
    "negll_obs",
    "negll_intrv",
    "n_cyclic",
    "fit_s",
    "eshd_mixture",
    "auroc_mixture",
    "auprc_mixture",
    "negll_obs_mixture",
    "negll_intrv_mixture",
    "edge_mae",
    "graph_tv",
    "graph_kl",
    "edge_mae_mixture",
    "graph_tv_mixture",
    "graph_kl_mixture",
    "exact_eshd",
    "exact_auroc",
)
COLORS = {"svgd": "tab:blue", "ensemble": "tab:orange", "random": "tab:gray", "exact": "tab:green"}


@dataclass
class CaseData:
    case_id: str
    config: str
    learner: str
    seed: int
    run_id: str
    metrics: dict[str, float]
    comparison_hash: str | None = None
    start_time: int = 0
    g_true: np.ndarray | None = None
    nodes: list[str] = field(default_factory=list)
    edge_probs: np.ndarray | None = None
    edge_probs_mixture: np.ndarray | None = None  # the same graphs weighted by the _mixture weights
    exact_edge_probs: np.ndarray | None = None  # exact-posterior studies: p(i -> j | D)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def fetch_cases(
    client: MlflowClient, experiment: str, parent: str | None = None, filter_string: str = ""
) -> list[CaseData]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment named {experiment!r} in this tracking store")
    runs = T.runs_of(client, exp.experiment_id, parent, status="FINISHED", extra=filter_string)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            tags = run.data.tags
            if T.CASE_ID_TAG not in tags:  # parent runs
                continue
            case_id, learner, seed = tags[T.CASE_ID_TAG], tags[T.LEARNER_TAG], int(tags[T.SEED_TAG])
            case = CaseData(
                case_id=case_id,
                config=config_label(case_id, seed, learner),
                learner=learner,
                seed=seed,
                run_id=run.info.run_id,
                metrics={k: v for k, v in run.data.metrics.items() if not k.startswith("time.")},
                comparison_hash=tags.get(T.COMPARISON_HASH_TAG),
                start_time=run.info.start_time,
            )
            _read_artifacts(client, case, Path(tmp) / run.info.run_id)
            _read_curves(client, case)
            cases.append(case)
    return sorted(cases, key=lambda c: (c.config, c.learner, c.seed))


def _read_artifacts(client: MlflowClient, case: CaseData, where: Path) -> None:
    where.mkdir(parents=True)
    try:
        particles = client.download_artifacts(case.run_id, "particles.npz", str(where))
        truth = client.download_artifacts(case.run_id, "ground_truth.yaml", str(where))
    except Exception:  # a run without artifacts (e.g. logged by another tool): metrics only
        return
    with np.load(particles, allow_pickle=False) as npz:
        post = Posterior(g=npz["g"], theta=None, log_weights=npz["log_weights"])
        mixture_weights = npz["log_weights_mixture"] if "log_weights_mixture" in npz.files else None
    with open(truth) as f:
        gt = yaml.safe_load(f)
    case.g_true = np.asarray(gt["g"], dtype=np.int32)
    case.nodes = list(gt.get("nodes") or [])
    keep, g, lw = acyclic_part(post)
    case.edge_probs = edge_marginals(g, lw) if keep.any() else np.full(case.g_true.shape, np.nan)
    if mixture_weights is not None:  # (runs recorded before the artifact had them: none)
        keep, g, lw = acyclic_part(Posterior(g=post.g, theta=None, log_weights=mixture_weights))
        case.edge_probs_mixture = edge_marginals(g, lw) if keep.any() else np.full(case.g_true.shape, np.nan)
    if any(a.path == "exact_posterior.npz" for a in client.list_artifacts(case.run_id)):
        with np.load(
            client.download_artifacts(case.run_id, "exact_posterior.npz", str(where)), allow_pickle=False
        ) as npz:
            case.exact_edge_probs = npz["edge_marginals"]


def _read_curves(client: MlflowClient, case: CaseData) -> None:
    for metric in ("eshd", "auroc", "n_edges", "n_cyclic"):
        history = retry_locked(client.get_metric_history, case.run_id, metric)
        if len(history) > 1:
            case.curves[metric] = sorted((m.step, m.value) for m in history)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def summary_table(cases: list[CaseData]) -> pd.DataFrame:
    rows = []
    for learner in ordered_learners({c.learner for c in cases}):
        mine = [c for c in cases if c.learner == learner]
        row = {"learner": learner, "n seeds": len(mine)}
        for metric in TABLE_METRICS:
            vals = np.array([c.metrics[metric] for c in mine if metric in c.metrics])
            if len(vals):
                sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
                row[metric] = f"{vals.mean():.3f} ± {sd:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


EDGE_TABLE_MAX_VARS = 5  # 20 edges: a table a reader still reads


def edge_marginal_table(cases: list[CaseData]) -> pd.DataFrame | None:
    """Exact-posterior studies of at most EDGE_TABLE_MAX_VARS nodes: per edge i -> j, p(i -> j | D)
    of the exact posterior and of each learner (its own weights, and ``+``: the ``_mixture``
    weights), each the mean over seeds (the DiBS paper's appendix Table 2 in this form)."""
    mine = [c for c in cases if c.exact_edge_probs is not None and c.edge_probs is not None]
    if not mine or len(mine[0].exact_edge_probs) > EDGE_TABLE_MAX_VARS:
        return None
    d = len(mine[0].exact_edge_probs)
    nodes = mine[0].nodes or [f"X{i}" for i in range(d)]
    exact_by_seed = {c.seed: c.exact_edge_probs for c in mine}
    columns = {"exact posterior": np.mean(list(exact_by_seed.values()), axis=0)}
    for learner in ordered_learners({c.learner for c in mine}):
        runs = [c for c in mine if c.learner == learner]
        columns[learner] = np.nanmean([c.edge_probs for c in runs], axis=0)
        if all(c.edge_probs_mixture is not None for c in runs):
            columns[f"{learner}+"] = np.nanmean([c.edge_probs_mixture for c in runs], axis=0)
    truth = mine[0].g_true
    rows = [
        {
            "edge": f"{nodes[i]} → {nodes[j]}",
            "in G*": "yes" if truth[i, j] else "",
            **{k: v[i, j] for k, v in columns.items()},
        }
        for i in range(d)
        for j in range(d)
        if i != j
    ]
    return pd.DataFrame(rows).round(3)


def paired_table(cases: list[CaseData]) -> tuple[pd.DataFrame, list[str]]:
    comparisons = paired_comparisons(sorted(cases, key=lambda c: c.start_time))  # a later run of a seed wins
    rows = [
        {
            "pair": f"{p.a} − {p.b}",
            "metric": p.metric,
            "n pairs": p.n,
            "mean diff": f"{p.diff_mean:+.3f}",
            "95% CI": "n/a" if np.isnan(p.ci_low) or p.sd == 0 else f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}]",
            "Wilcoxon p": "n/a" if np.isnan(p.p_value) else f"{p.p_value:.3g}",
            "non-zero pairs": p.n_nonzero,
            "smallest possible p": "n/a" if np.isnan(p.min_p) else f"{p.min_p:.3g}",
            "first better": f"{p.a_better} of {p.n}",
        }
        for p in comparisons
    ]
    return pd.DataFrame(rows), [p.statement for p in comparisons]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def plot_metrics(cases: list[CaseData], config: str, path: Path) -> Path | None:
    learners = ordered_learners({c.learner for c in cases})
    present = [(m, label) for m, label in BOXPLOT_METRICS if any(m in c.metrics for c in cases)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (metric, label) in zip(axes[0], present):
        data = [[c.metrics[metric] for c in cases if c.learner == l and metric in c.metrics] for l in learners]
        ax.boxplot(data, tick_labels=learners, showfliers=False, widths=0.5, medianprops={"color": "black", "lw": 1.5})
        for i, (learner, vals) in enumerate(zip(learners, data), start=1):
            ax.scatter(
                i + rng.uniform(-0.12, 0.12, len(vals)),
                vals,
                s=18,
                zorder=3,
                color=COLORS.get(learner, "tab:green"),
                alpha=0.8,
            )
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("learner")
        ax.grid(axis="y", alpha=0.3)
    n_seeds = len({c.seed for c in cases})
    fig.suptitle(
        f"{config}: metrics by learner over {n_seeds} seed(s) (box: quartiles, black line: median; dots: one seed each)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(cases: list[CaseData], config: str, path: Path) -> Path | None:
    with_graphs = [c for c in cases if c.edge_probs is not None and not np.isnan(c.edge_probs).any()]
    if not with_graphs:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    for learner in ordered_learners({c.learner for c in with_graphs}):
        mine = [c for c in with_graphs if c.learner == learner]
        truth = np.concatenate([off_diagonal(c.g_true) for c in mine])
        score = np.concatenate([off_diagonal(c.edge_probs) for c in mine])
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = skm.roc_curve(truth, score)
        ax.plot(
            fpr,
            tpr,
            color=COLORS.get(learner),
            lw=2,
            label=f"{learner} (pooled AUC {skm.auc(fpr, tpr):.3f}, {len(mine)} seeds)",
        )
    ax.plot([0, 1], [0, 1], ls="--", color="black", lw=1, label="chance")
    ax.set_xlabel("false positive rate (non-edges scored as edges)")
    ax.set_ylabel("true positive rate (true edges recovered)")
    ax.set_title(f"{config}: ROC of edge marginals p(i→j)\n(off-diagonal entries, seeds pooled)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_edges(cases: list[CaseData], config: str, path: Path) -> Path | None:
    with_graphs = [c for c in cases if c.edge_probs is not None]
    if not with_graphs:
        return None
    learners = ordered_learners({c.learner for c in with_graphs})
    seeds = sorted(
        {
            c.seed
            for c in with_graphs
            if all(any(x.seed == c.seed and x.learner == l for x in with_graphs) for l in learners)
        }
    )
    seed = seeds[0] if seeds else with_graphs[0].seed
    row = {c.learner: c for c in with_graphs if c.seed == seed}
    first = next(iter(row.values()))
    d = first.g_true.shape[0]
    names = first.nodes if len(first.nodes) == d else [str(i) for i in range(d)]
    panels = [("ground truth G*", first.g_true.astype(float))] + [
        (f"{l}: p(i→j) (eshd {row[l].metrics.get('eshd', np.nan):.2f})", row[l].edge_probs)
        for l in learners
        if l in row
    ]
    size = max(3.0, 0.28 * d + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1, size + 0.6), squeeze=False)
    for k, (ax, (title, mat)) in enumerate(zip(axes[0], panels)):
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(d), names, rotation=90, fontsize=7)
        ax.set_yticks(range(d), names if k == 0 else [], fontsize=7)
        ax.set_xlabel("to (child j)")
        if k == 0:
            ax.set_ylabel("from (parent i)")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="edge probability (1 = edge in G*)")
    fig.suptitle(f"{config}, seed {seed}: true adjacency and each learner's edge probabilities", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_exact_marginals(cases: list[CaseData], config: str, path: Path) -> Path | None:
    """One panel per learner: its edge marginals (y) against the exact posterior's (x), every
    off-diagonal entry of every seed; on the line y = x a learner matches the posterior."""
    mine = [c for c in cases if c.exact_edge_probs is not None and c.edge_probs is not None]
    if not mine:
        return None
    learners = ordered_learners({c.learner for c in mine})
    fig, axes = plt.subplots(1, len(learners), figsize=(3.6 * len(learners), 3.9), squeeze=False)
    for ax, learner in zip(axes[0], learners):
        runs = [c for c in mine if c.learner == learner]
        exact = np.concatenate([off_diagonal(c.exact_edge_probs) for c in runs])
        learned = np.concatenate([off_diagonal(np.nan_to_num(c.edge_probs)) for c in runs])
        ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--")
        ax.scatter(exact, learned, s=12, alpha=0.5, color=COLORS.get(learner, "tab:purple"))
        mae = np.mean([c.metrics["edge_mae"] for c in runs if "edge_mae" in c.metrics] or [np.nan])
        ax.set_title(f"{learner}: edge_mae {mae:.3f} ({len(runs)} seeds)", fontsize=9)
        ax.set_xlabel("exact p(i→j | D)")
        ax.set_ylabel("learner's p(i→j)" if ax is axes[0][0] else "")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{config}: edge marginals against the exact posterior (uniform weights; dashed: y = x)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_convergence(cases: list[CaseData], config: str, path: Path) -> Path | None:
    with_curves = [c for c in cases if c.curves]
    if not with_curves:
        return None
    metrics = [m for m in ("eshd", "auroc", "n_edges", "n_cyclic") if any(m in c.curves for c in with_curves)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for learner in ordered_learners({c.learner for c in with_curves}):
            curves = [dict(c.curves[metric]) for c in with_curves if c.learner == learner and metric in c.curves]
            steps = sorted(set.intersection(*(set(cv) for cv in curves))) if curves else []
            if not steps:
                continue
            vals = np.array([[cv[s] for s in steps] for cv in curves])
            mean, sd = vals.mean(axis=0), vals.std(axis=0)
            ax.plot(steps, mean, color=COLORS.get(learner), lw=2, label=f"{learner} (mean of {len(curves)} seeds)")
            ax.fill_between(steps, mean - sd, mean + sd, color=COLORS.get(learner), alpha=0.2)
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(
            {
                "eshd": "eshd (lower is better)",
                "auroc": "auroc (higher is better)",
                "n_edges": "expected number of edges",
                "n_cyclic": "cyclic particles",
            }[metric]
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{config}: convergence (band: ± 1 sd over seeds; uniform particle weights; cyclic particles "
        "dropped, as in the final metrics)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------


def build_report(
    uri: str, experiment: str, out: Path, parent: str | None = None, filter_string: str = "", all_sessions: bool = False
) -> Path:
    """The report of one session: ``parent``, else the latest; ``all_sessions`` reads every one
    (cases are still paired only within one config hash, see ``harness.analysis.compare``)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(uri)
    chosen = parent is not None
    if not chosen and not all_sessions:
        latest = T.latest_session(client, experiment)
        parent = latest.info.run_id if latest else None
    cases = fetch_cases(client, experiment, parent, filter_string)
    if not cases:
        raise SystemExit(f"no finished case runs in experiment {experiment!r} match")
    _label_configs_by_comparison_hash(cases)
    out.mkdir(parents=True, exist_ok=True)
    if parent:
        session = retry_locked(client.get_run, parent).info.run_name
        read = f" of session `{session}` (parent run `{parent}`" + (
            ")" if chosen else ", the latest; `--all-sessions` reads every session)"
        )
    else:
        read = " of every session of the experiment"
    md = [
        f"# Report: experiment `{experiment}`",
        "",
        f"{len(cases)} finished case runs{read}"
        + (f" matching `{filter_string}`" if filter_string else "")
        + f"; tracking store `{uri}`.",
        "",
        "Metrics: mean ± sd over seeds. Paired comparison: per seed, the first learner minus the second "
        "(the cases of a seed share their data); 95% t-interval of the mean difference; Wilcoxon signed-rank p.",
        "",
    ]
    sections_html = []
    for config in sorted({c.config for c in cases}):
        mine = [c for c in cases if c.config == config]
        table = summary_table(mine)
        paired, statements = paired_table(mine)
        figures = [
            f
            for f in (
                plot_metrics(mine, config, out / f"{_safe(config)}_metrics.png"),
                plot_roc(mine, config, out / f"{_safe(config)}_roc.png"),
                plot_edges(mine, config, out / f"{_safe(config)}_edges.png"),
                plot_convergence(mine, config, out / f"{_safe(config)}_convergence.png"),
                plot_exact_marginals(mine, config, out / f"{_safe(config)}_exact.png"),
            )
            if f is not None
        ]
        md += [f"## {config}", "", table.to_markdown(index=False), ""]
        edges = edge_marginal_table(mine)
        if edges is not None:
            md += [
                f"Edge marginals p(i → j), mean over {len({c.seed for c in mine})} seeds: the exact posterior's, "
                "each learner's (its own weights) and `+` (the same graphs under the `_mixture` weights):",
                "",
                edges.to_markdown(index=False),
                "",
            ]
        if statements:
            md += (
                ["Paired comparison:", "", paired.to_markdown(index=False), ""] + [f"- {s}" for s in statements] + [""]
            )
        md += [f"![{f.stem}]({f.name})" for f in figures] + [""]
        sections_html.append(_html_section(config, table, paired, statements, figures, edges))
    history = fetch_history(client, experiment)
    if not history.empty:
        table, figure = history_table(history), plot_history(history, out / "history.png")
        md += [
            "## History (every session of the experiment)",
            "",
            table.to_markdown(index=False),
            "",
            f"![history]({figure.name})",
            "",
        ]
        sections_html.append(_html_section("History (every session of the experiment)", table, None, [], [figure]))
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(_html_page(experiment, "\n".join(md[:6]), sections_html))
    return out / "report.md"


def _label_configs_by_comparison_hash(cases: list[CaseData]) -> None:
    """A config name whose runs have several comparison hashes (other settings under the same name,
    e.g. a shortened --override session) becomes one section per hash, ``name (hash)``."""
    hashes: dict[str, set] = {}
    for c in cases:
        hashes.setdefault(c.config, set()).add(c.comparison_hash)
    for c in cases:
        if len(hashes[c.config]) > 1:
            c.config = f"{c.config} ({str(c.comparison_hash)[:8]})"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _html_section(config, table, paired, statements, figures, edges=None) -> str:
    parts = [f"<h2>{html.escape(config)}</h2>", table.to_html(index=False, border=0, classes="t")]
    if edges is not None:
        parts += [
            "<p>Edge marginals p(i → j), mean over seeds (exact, each learner, + the _mixture weights):</p>",
            edges.to_html(index=False, border=0, classes="t"),
        ]
    if statements:
        parts += [
            "<p>Paired comparison:</p>",
            paired.to_html(index=False, border=0, classes="t"),
            "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in statements) + "</ul>",
        ]
    for f in figures:
        data = base64.b64encode(f.read_bytes()).decode()
        parts.append(f'<p><img alt="{html.escape(f.stem)}" src="data:image/png;base64,{data}"></p>')
    return "\n".join(parts)


def _html_page(experiment: str, intro_md: str, sections: list[str]) -> str:
    intro = "".join(f"<p>{html.escape(line)}</p>" for line in intro_md.splitlines()[1:] if line.strip())
    style = (
        "body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
        "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{padding:3px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Report: {html.escape(experiment)}</title>"
        f"<style>{style}</style></head><body><h1>Report: experiment {html.escape(experiment)}</h1>"
        f"{intro}{''.join(sections)}</body></html>"
    )


__all__ = ["build_report", "fetch_cases", "summary_table", "paired_table", "COMPARED"]
