"""When did a number move: every session of an experiment, in time order.

    python -m harness history --experiment NAME [--metric eshd ...] [--out DIR]

For each session (a parent run) and each config (a study at one sweep point), learner and metric:
the mean over the session's finished cases (its seeds) with a 95% t-interval, labelled by the
session's git commit and start time. Written as ``history.png`` (one panel per metric, one line per
config and learner, sessions on the x axis in time order) and ``history.md`` (the same numbers as
a table, with a digest of each group's config hashes: when it changes, the study or the selection of
seeds did, and the numbers are not comparable with the session before), in ``DIR`` (default
``reports/<experiment>/``). The report includes the same section.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from harness.analysis.compare import COMPARED, ordered_learners, t_interval  # noqa: E402
from harness.evaluation.registry import lower_is_better  # noqa: E402
from harness.tracking import tags as T  # noqa: E402
from harness.tracking.records import config_label  # noqa: E402
from harness.tracking.store import retry_locked  # noqa: E402

COLUMNS = [
    "session",
    "started",
    "git_commit",
    "config",
    "learner",
    "metric",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "cases_hash",
]


def fetch_history(client: MlflowClient, experiment: str, metrics: tuple[str, ...] = COMPARED) -> pd.DataFrame:
    """One row per session, config, learner and metric (columns ``COLUMNS``), sessions in time order."""
    exp = retry_locked(client.get_experiment_by_name, experiment)
    if exp is None:
        raise SystemExit(f"no experiment named {experiment!r} in this tracking store")
    runs = T.runs_with_status(client, [exp.experiment_id], "FINISHED")
    sessions = {r.info.run_id: r for r in T.sessions(client, exp.experiment_id)}
    groups: dict[tuple, list] = {}
    for run in runs:
        tags = run.data.tags
        parent = tags.get(T.PARENT_TAG)
        if T.CASE_ID_TAG in tags and parent in sessions:
            learner = tags.get(T.LEARNER_TAG, "?")
            config = config_label(tags[T.CASE_ID_TAG], tags.get(T.SEED_TAG, ""), learner)
            groups.setdefault((parent, config, learner), []).append(run)
    rows = []
    for (parent, config, learner), cases in groups.items():
        session = sessions[parent]
        for metric in metrics:
            values = [c.data.metrics[metric] for c in cases if metric in c.data.metrics]
            if not values:
                continue
            mean, half = t_interval(values)
            rows.append(
                {
                    "session": session.info.run_name or parent,
                    "started": session.info.start_time,
                    "git_commit": session.data.tags.get(T.GIT_COMMIT_TAG, "unknown")[:8],
                    "config": config,
                    "learner": learner,
                    "metric": metric,
                    "n": len(values),
                    "mean": mean,
                    "ci_low": mean - half,
                    "ci_high": mean + half,
                    "cases_hash": cases_hash(c.data.tags.get(T.CONFIG_HASH_TAG, "?") for c in cases),
                }
            )
    df = pd.DataFrame(rows, columns=COLUMNS)
    order = {l: i for i, l in enumerate(ordered_learners(set(df["learner"])))}
    df["_order"] = df["learner"].map(order)
    return df.sort_values(["started", "config", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


def cases_hash(config_hashes) -> str:
    return hashlib.sha256(",".join(sorted(config_hashes)).encode()).hexdigest()[:8]


def session_label(row) -> str:
    started = time.strftime("%m-%d %H:%M", time.localtime(row["started"] / 1000))
    return f"{row['git_commit']}\n{started}"


def plot_history(df: pd.DataFrame, path: Path) -> Path:
    """One panel per metric; per config and learner, the session means with their intervals."""
    sessions = df.drop_duplicates("session").sort_values("started")
    x_of = {s: i for i, s in enumerate(sessions["session"])}
    metrics = list(dict.fromkeys(df["metric"]))
    series = [
        (c, l) for c in sorted(set(df["config"])) for l in ordered_learners(set(df[df["config"] == c]["learner"]))
    ]
    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(max(7.0, 0.9 * len(x_of) + 3), 2.6 * len(metrics)), sharex=True, squeeze=False
    )
    width = 0.35 / max(1, len(series))
    for ax, metric in zip(axes[:, 0], metrics):
        for k, (config, learner) in enumerate(series):
            part = df[(df["metric"] == metric) & (df["config"] == config) & (df["learner"] == learner)]
            if part.empty:
                continue
            xs = [x_of[s] + (k - (len(series) - 1) / 2) * width for s in part["session"]]
            err = [(part["mean"] - part["ci_low"]).fillna(0), (part["ci_high"] - part["mean"]).fillna(0)]
            ax.errorbar(xs, part["mean"], yerr=err, marker="o", capsize=3, label=f"{config} {learner}")
        direction = "lower" if lower_is_better(metric) else "higher"
        ax.set_ylabel(f"{metric}\n({direction} is better)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[0, 0].set_title("mean over seeds per session, 95% t-interval")
    axes[-1, 0].set_xticks(range(len(x_of)), [session_label(r) for _, r in sessions.iterrows()], fontsize=8)
    axes[-1, 0].set_xlabel("session (git commit, start time)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def history_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per session, config and learner; per metric "mean (95% interval)"."""
    cell = [
        f"{m:.4g} ({lo:.3g} to {hi:.3g})" if n > 1 else f"{m:.4g} (n=1)"
        for m, lo, hi, n in zip(df["mean"], df["ci_low"], df["ci_high"], df["n"])
    ]
    keys = ["started", "git_commit", "session", "config", "learner", "n", "cases_hash"]
    wide = df.assign(cell=cell).pivot_table(index=keys, columns="metric", values="cell", aggfunc="first", sort=False)
    wide = wide[[m for m in dict.fromkeys(df["metric"]) if m in wide.columns]].reset_index()
    wide["started"] = [time.strftime("%Y-%m-%d %H:%M", time.localtime(t / 1000)) for t in wide["started"]]
    wide.columns.name = None
    return wide


def write_history(uri: str, experiment: str, out: Path, metrics: tuple[str, ...] = COMPARED) -> tuple[Path, Path]:
    df = fetch_history(MlflowClient(uri), experiment, metrics)
    if df.empty:
        raise SystemExit(f"no finished session with case runs in experiment {experiment!r}")
    out.mkdir(parents=True, exist_ok=True)
    png = plot_history(df, out / "history.png")
    md = out / "history.md"
    table = history_table(df).to_markdown(index=False)
    md.write_text(f"# History of experiment `{experiment}`\n\n{table}\n\n![history]({png.name})\n")
    return png, md
