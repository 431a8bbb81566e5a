"""The README and docs/: every relative link and image resolves, the README's first code block is
what CI runs, and the README stays a page a newcomer reads in five minutes."""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT

SKIP_DIRS = {"build", "mlruns", "reports", "slurm_jobs", "mlflow-spool", "node_modules"}


def markdown_pages(root: Path) -> list[Path]:
    """Every Markdown page of the repository, found recursively (not in hidden, build or output
    directories)."""
    return sorted(
        p
        for p in root.rglob("*.md")
        if not any(
            part.startswith(".") or part in SKIP_DIRS or part.endswith(".egg-info")
            for part in p.relative_to(root).parts[:-1]
        )
    )


PAGES = markdown_pages(ROOT)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_targets(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks and spans hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    targets = relative_targets(page)
    missing = [t for t in targets if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "see [there](docs/nowhere.md) and ![img](pic.png), not [web](https://x.org) or `[code](a.md)`\n"
        "```\n[in a block](b.md)\n```\n"
    )
    assert relative_targets(page) == ["docs/nowhere.md", "pic.png"]


def test_pages_are_found_recursively():
    assert {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/results/paper_linear/report.md"} <= {
        str(p.relative_to(ROOT)) for p in PAGES
    }


def test_every_docs_page_is_linked_from_the_readme():
    linked = {t.split("#")[0] for t in relative_targets(ROOT / "README.md")}
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def commands(lines: list[str]) -> list[str]:
    """Shell commands without comments, one per line."""
    out = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words:
            out.append(" ".join(words))
    return out


def test_the_readme_first_code_block_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1).splitlines()
    setup, run, test = commands(block)
    ci = commands((ROOT / ".ci" / "run").read_text().splitlines())
    assert run == "pytest benchmarks -n 4"
    assert test in ci
    # the set-up: the same venv and the same install (CI upgrades pip in between)
    venv, _, install = [part.strip() for part in setup.split("&&")]
    assert any(venv in line for line in ci) and install.replace("pip install", "python -m pip install --quiet") in ci


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.integration  # a benchmark session
def test_the_example_learner_of_adding_a_learner_runs_as_the_page_says(tmp_path, write_study):
    """The page's module, saved as it says, runs through HARNESS_LEARNERS: equally weighted DAGs
    without latent particles, its diagnostic logged, every metric computed."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    from harness.tracking.store import sqlite_uri
    from tests.conftest import outcome, run_pytest, tiny_study

    page = (ROOT / "docs" / "adding-a-learner.md").read_text()
    module = re.search(r"```python\n(.*?)```", page, flags=re.S).group(1)
    package = tmp_path / "code" / "my_learners"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "independent_edges.py").write_text(module)
    path = write_study(tiny_study(name="example", learners={"independent_edges": {"n_particles": 6}}))
    env = {
        "HARNESS_LEARNERS": "independent_edges=my_learners.independent_edges",
        "PYTHONPATH": f"{ROOT}:{tmp_path / 'code'}",
    }
    proc = run_pytest(["--configs", str(path)], tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert outcome(proc.stdout)["passed"] == 2
    client = MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    runs = client.search_runs(
        [client.get_experiment_by_name("dibs_vs_ensembles").experiment_id], "tags.learner = 'independent_edges'"
    )
    assert len(runs) == 2
    # --reuse keeps the diagnostic, which the harness's registry does not name (read back by its tag)
    reused = run_pytest(
        ["--configs", str(path), "--reuse", "--results-csv", str(tmp_path / "reused.csv")], tmp_path, env=env
    )
    assert reused.returncode == 0 and "reused 2 case(s)" in reused.stdout, reused.stdout[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "reused.csv")))
    assert sorted(float(r["metrics.independent_edges_drawn"]) for r in rows) == sorted(
        run.data.metrics["independent_edges_drawn"] for run in runs
    )
    for run in runs:
        assert run.data.tags["harness.diagnostics"] == "independent_edges_drawn"
        assert {"eshd", "auroc", "negll_obs", "eshd_mixture", "independent_edges_drawn"} <= set(run.data.metrics)
        local = client.download_artifacts(run.info.run_id, "particles.npz", str(tmp_path / run.info.run_id))
        with np.load(local, allow_pickle=False) as npz:
            assert "z" not in npz.files and npz["g"].shape == (6, 4, 4)
            np.testing.assert_allclose(npz["log_weights"], np.log(np.full(6, 1 / 6)))


def test_every_option_of_the_plugin_is_in_docs_studies():
    """docs/studies.md promises every option: each ``--option`` the plugin adds appears there."""

    from harness.execution import plugin

    class Group:
        def __init__(self):
            self.options = []

        def addoption(self, *names, **kwargs):
            self.options += [n for n in names if n.startswith("--")]

    class Parser:
        group = Group()

        def getgroup(self, *args, **kwargs):
            return self.group

    parser = Parser()
    plugin.pytest_addoption(parser)
    assert len(parser.group.options) >= 14  # the parser stand-in saw them
    page = (ROOT / "docs" / "studies.md").read_text()
    missing = [o for o in parser.group.options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", page)]
    assert not missing, f"options of harness/execution/plugin.py missing from docs/studies.md: {missing}"


def test_every_gated_metric_and_its_minimum_effect_is_in_docs_regression_gate():
    """docs/regression-gate.md names every metric the gate compares (the registry's) and each
    default minimum effect as the code has it."""
    from harness.analysis.baseline import DEFAULT_MIN_EFFECT
    from harness.evaluation.registry import COMPARED

    page = (ROOT / "docs" / "regression-gate.md").read_text()
    missing = [m for m in COMPARED if f"`{m}`" not in page]
    assert not missing, f"gated metrics missing from docs/regression-gate.md: {missing}"
    wrong = [f"{m} {effect}" for m, effect in DEFAULT_MIN_EFFECT.items() if f"`{m}` {effect}" not in page]
    assert not wrong, f"minimum effects not stated as the code has them in docs/regression-gate.md: {wrong}"


def test_each_compared_metrics_direction_is_in_docs_metrics():
    """docs/metrics.md says of every compared metric whether lower or higher is better, as the
    registry does."""
    from harness.evaluation.registry import LOWER_IS_BETTER

    page = (ROOT / "docs" / "metrics.md").read_text()
    for metric, lower in LOWER_IS_BETTER.items():
        word = "lower" if lower else "higher"
        assert re.search(rf"`{metric}`[^\n]*\b{word} is better", page), f"{metric}: '{word} is better' not stated"


def test_outcome_reads_the_counts_of_pytests_closing_line():
    from tests.conftest import outcome

    text = "x\n12 passed, 1 skipped\n===== 4 failed, 12 passed, 1 skipped, 2 errors, 1 warning in 9.12s =====\n"
    assert outcome(text) == {"failed": 4, "passed": 12, "skipped": 1, "error": 2}
    assert outcome("2 passed in 3.00s") == {"passed": 2, "failed": 0, "skipped": 0, "error": 0}
    assert outcome("1 failed in 0.5s")["passed"] == 0  # not read from another line


def table_problems(text: str) -> list[str]:
    """Markdown tables that do not render as written: a header without its separator row, a row of
    another number of cells than the header (``\\|`` is a pipe inside a cell), or a table glued to the
    line above it (it then runs into that paragraph or table)."""

    def n_cells(line: str) -> int:
        inner = line.strip().removeprefix("|").removesuffix("|")
        return len(re.split(r"(?<!\\)\|", inner))

    out, lines, in_code, i = [], text.splitlines(), False, 0
    while i < len(lines):
        if lines[i].startswith("```"):
            in_code = not in_code
        if in_code or not lines[i].lstrip().startswith("|"):
            i += 1
            continue
        start, block = i, []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            block.append(lines[i])
            i += 1
        if len(block) < 2 or not re.fullmatch(r"\s*\|(\s*:?-{3,}:?\s*\|)+\s*", block[1]):
            out.append(f"line {start + 1}: a table without its header separator")
            continue
        out += [
            f"line {start + k + 1}: {n_cells(row)} cells, the header has {n_cells(block[0])}"
            for k, row in enumerate(block)
            if n_cells(row) != n_cells(block[0])
        ]
        if start and lines[start - 1].strip():
            out.append(f"line {start + 1}: no blank line before the table")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_renders_as_written(page):
    problems = table_problems(page.read_text())
    assert not problems, f"{page.relative_to(ROOT)}: {problems}"


def test_the_table_check_finds_broken_tables():
    glued = "| a | b |\n| --- | --- |\n| 1 | 2 |\n| x | y | z | w |\n"
    assert table_problems(glued) == ["line 4: 4 cells, the header has 2"]
    assert table_problems("text\n| a |\n| --- |\n") == ["line 2: no blank line before the table"]
    assert table_problems("\n| --- | --- \nmore\n") == ["line 2: a table without its header separator"]
    assert table_problems("\n| a \\| b | c |\n| --- | --- |\n") == []  # an escaped pipe is not a cell border


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*#*$", text)}


def link_problems(page: Path) -> list[str]:
    """Anchors that match no heading, and reference-style links without a definition (or with a
    definition to a missing file)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or "#" not in target:
            continue
        file, anchor = target.split("#", 1)
        where = page if not file else page.parent / file
        if where.suffix == ".md" and where.exists() and anchor not in anchors(where):
            problems.append(f"anchor #{anchor} is no heading of {where.name}")
    definitions = {m[0].lower(): m[1] for m in re.findall(r"(?m)^ {0,3}\[([^\]]+)\]:\s*(\S+)", text)}
    for label, ref in re.findall(r"\[([^\]]+)\]\[([^\]]*)\]", text):
        key = (ref or label).lower()
        if key not in definitions:
            problems.append(f"reference link [{label}][{ref}] has no definition")
    for target in definitions.values():
        if (
            not re.match(r"[a-z]+:", target)
            and not target.startswith("#")
            and not (page.parent / target.split("#")[0]).exists()
        ):
            problems.append(f"reference definition to a missing file: {target}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_anchor_and_reference_link_resolves(page):
    assert not link_problems(page), f"{page.relative_to(ROOT)}: {link_problems(page)}"


def test_the_link_check_finds_bad_anchors_and_references(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `spool`: what it holds\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n[ok](other.md#the-spool-what-it-holds) [bad](other.md#nowhere) [self](#top) [me](#gone)\n"
        "[a][known] [b][unknown] [c][]\n\n[known]: other.md\n[c]: missing.md\n"
    )
    assert link_problems(page) == [
        "anchor #nowhere is no heading of other.md",
        "anchor #gone is no heading of page.md",
        "reference link [b][unknown] has no definition",
        "reference definition to a missing file: missing.md",
    ]


# a page is reference or result, not a lab notebook: no first person, no "this session", no
# machine's absolute paths
NOTEBOOK = re.compile(
    r"\bI (could|did|do|have|had|ran|measured|found|think|tried|used|read|saw)\b|\b(my|we|our|us)\b"
    r"|\bthe issue\b|\bthis session\b|\bthis machine\b|(?<![\w.~])/(work|home|root|tmp|Users)/"
)


def notebook_phrases(text: str) -> list[str]:
    return [m.group(0) for m in NOTEBOOK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_read_as_reference_not_as_a_notebook(page):
    found = notebook_phrases(page.read_text())
    assert not found, f"{page.relative_to(ROOT)}: {found}"


def test_the_notebook_check_finds_first_person_sessions_and_paths():
    text = (
        "I could not read it on this machine; our run, see the issue, this session, "
        "sqlite:////work/run/mlflow.db, --out /tmp/x; fine: (I + G/d), hour, i → j, ./work/x, ~/tmp/"
    )
    assert notebook_phrases(text) == ["I could", "this machine", "our", "the issue", "this session", "/work/", "/tmp/"]
