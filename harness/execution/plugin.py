"""The harness as a pytest plugin: options, case parametrisation, device pinning, the session
controller (plan, parent runs, summary, CSV, baseline gate), and what the ``case_run`` fixture of
the root ``conftest.py`` opens and closes around each case.

Registered once, by the root ``conftest.py`` (``pytest_plugins``), not as a ``pytest11`` entry
point. The controller (the xdist master, or the only process) creates the experiments and parent
runs before any worker starts and hands their ids to the workers; workers only create child runs.

What a process knows of its session lives in one :class:`PluginState` in ``config.stash``: the
cases it collected, the session (opened by :func:`session_of`, the one place that opens it), and the
executor that opens each case's run (``harness.execution.executors``: local, or a Slurm job array).

Collecting (``pytest benchmarks --collect-only``) imports neither JAX nor MLflow, scipy or pandas:
the modules that need them are imported where a session, a case or a summary needs them. With
``--collect-only`` the plan therefore gives no time estimate (it would read the MLflow store).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.execution import devices
from harness.study import plan
from harness.study.loading import Case, StudyFileError, load_cases, parse_overrides
from harness.tracking.records import CaseRecord

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
DEFAULT_CONFIGS = str(ROOT / "configs" / "*.yaml")


def pytest_addhooks(pluginmanager):
    from harness.execution import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser):
    group = parser.getgroup("harness", "benchmark harness")
    group.addoption(
        "--configs",
        action="append",
        metavar="PATH_OR_GLOB",
        help="study files to collect instead of configs/*.yaml (repeatable)",
    )
    group.addoption(
        "--override",
        action="append",
        metavar="KEY=VALUE",
        help="set a dotted study key in every collected study, e.g. inference.steps=10 (repeatable)",
    )
    group.addoption(
        "--mlflow-uri", help="tracking URI (beats MLFLOW_TRACKING_URI) (default: sqlite:///mlruns/mlflow.db)"
    )
    group.addoption(
        "--spool",
        metavar="DIR",
        help="where a case's run goes when the tracking store cannot be reached after the client's "
        "retries, for `dibs-bench sync` to replay (default: $HARNESS_SPOOL, else ./mlflow-spool; "
        "with --executor slurm, <slurm folder>/spool)",
    )
    group.addoption("--gpus", help="comma-separated GPU ids to spread workers over (default: all visible)")
    group.addoption("--jax-cache", help="JAX persistent compilation cache directory, or 'off' (default: .jax_cache)")
    group.addoption("--results-csv", metavar="PATH", help="write one row per case to this CSV file")
    group.addoption(
        "--reuse",
        action="store_true",
        help="skip a case whose experiment already has a FINISHED run of the same config hash "
        "and harness version; report that run's metrics",
    )
    group.addoption(
        "--save-baseline",
        metavar="PATH",
        help="write this session's per-case metrics as a baseline file (YAML) for --baseline",
    )
    group.addoption(
        "--baseline",
        metavar="PATH|mlflow:RUN_ID|mlflow:latest",
        help="fail the session where a learner got worse than in this baseline, paired by seed "
        "(rule: harness.analysis.baseline, docs/regression-gate.md)",
    )
    group.addoption(
        "--case-timeout",
        type=float,
        metavar="SECONDS",
        help="fail a case running longer than this (a study's timeout_s takes precedence)",
    )
    group.addoption(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: this machine's pytest process and xdist workers (default); slurm: one Slurm job "
        "array of the selected cases (docs/cluster.md)",
    )
    group.addoption(
        "--slurm",
        action="append",
        metavar="KEY=VALUE",
        help="a submitit Slurm parameter for --executor slurm, e.g. partition=gpu, gpus_per_node=1, "
        "timeout_min=600 (repeatable; values are YAML)",
    )
    group.addoption(
        "--slurm-folder",
        default="slurm_jobs",
        metavar="DIR",
        help="submitit's folder for the array's scripts, pickles and logs, on a file system the "
        "nodes share (default: slurm_jobs)",
    )
    group.addoption(
        "--run-anywhere",
        action="store_true",
        help="run cases of studies with `requires: [gpu]` on a machine without a GPU (skipped otherwise)",
    )


@dataclass
class PluginState:
    """What this process knows of its session (one per process, in ``config.stash``)."""

    cases: list[Case] | None = None  # the collected studies' cases (loaded once)
    session: Any = None  # harness.tracking.sessions.Session, once opened (controller) or received (worker)
    executor: Any = None  # harness.execution.executors.Executor, once the first case runs (or Slurm submits)
    has_gpu: bool | None = None
    slurm_params: dict = field(default_factory=dict)
    spool_lines: list[str] = field(default_factory=list)  # what replays of the spool did, for the summary


STATE = pytest.StashKey[PluginState]()


def state_of(config) -> PluginState:
    return config.stash.setdefault(STATE, PluginState())


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _n_workers(config) -> int:
    if _is_worker(config):
        return int(config.workerinput["workercount"])
    n = getattr(config.option, "numprocesses", None)
    return n if isinstance(n, int) else 0


def pytest_configure(config):
    state = state_of(config)
    if config.getoption("jax_cache"):
        os.environ["HARNESS_JAX_CACHE"] = config.getoption("jax_cache")
    if _wants_benchmarks(config):
        from harness.tracking.store import disable_mlflow_telemetry

        disable_mlflow_telemetry()
        _handle_stop_signals(config)
    if _is_worker(config):
        info = config.workerinput
        devices.pin_this_process(devices.worker_index(info["workerid"]), info["workercount"], config.getoption("gpus"))
        session = json.loads(info.get("harness_session") or "null")
        if session:
            from harness.tracking import sessions

            state.session = sessions.Session.from_dict(session)
        return
    if config.getoption("baseline"):
        from harness.analysis import baseline

        try:
            baseline.parse_source(config.getoption("baseline"))
        except baseline.BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.getoption("executor") == "slurm":
        _check_slurm_options(config)
    config.pluginmanager.register(Controller(config), "harness-controller")
    if _n_workers(config) == 0:
        devices.pin_this_process(0, 1, config.getoption("gpus"))
    elif _wants_benchmarks(config):
        session_of(config)  # under xdist: opened here, before the workers exist


def _handle_stop_signals(config) -> None:
    """SIGTERM is handled as Ctrl-C, with the signal's name as the reason: the running cases' runs
    and the session's parent runs end KILLED instead of staying RUNNING until a later session finds
    them stale. The controller passes it on to its xdist workers; a worker also takes SIGINT (what
    execnet sends a worker still busy 5 s after the session ended) through the same handler, which
    keeps a second signal from cutting short the recording of the first (``harness.execution.interrupts``).
    The controller's and a lone process's SIGINT stay Python's, so a second Ctrl-C still stops a
    slow teardown."""
    from harness.execution import interrupts

    if _is_worker(config):
        handler = interrupts.stop_handler()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    else:
        import psutil  # noqa: F401 - loaded now, not inside the signal handler

        signal.signal(signal.SIGTERM, interrupts.stop_handler(also=_pass_on_to_children))


def _pass_on_to_children(signum: int) -> None:
    """Send ``signum`` to this process's children (its xdist workers)."""
    import psutil  # (imported when the handler was installed: here only looked up)

    for child in psutil.Process().children():
        try:
            child.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def pytest_unconfigure(config):
    # the process exits next: without this, the interpreter's final garbage collection walks every
    # object of mlflow, JAX and scikit-learn, 1-2 s of CPU in each controller and worker process
    gc.freeze()


def _check_slurm_options(config) -> None:
    """Refuse a Slurm session that cannot work, before anything is submitted."""
    import shutil

    from harness.execution import slurm
    from harness.tracking import store

    if _n_workers(config) > 0:
        raise pytest.UsageError(
            "--executor slurm: the cases run as Slurm array tasks and this process waits for "
            "them; leave out -n (xdist workers)"
        )
    try:
        slurm.check_store(store.resolve_uri(config.getoption("mlflow_uri"), root=config.invocation_params.dir))
        state_of(config).slurm_params = slurm.parse_parameters(config.getoption("slurm"))
    except slurm.SlurmError as exc:
        raise pytest.UsageError(str(exc)) from None
    if shutil.which("sbatch") is None:
        raise pytest.UsageError(
            "--executor slurm: sbatch is not on the PATH (run from a Slurm login node; "
            "scripts/local_slurm.sh start runs a one-node Slurm here)"
        )


def _wants_benchmarks(config) -> bool:
    if config.getoption("configs"):
        return True
    for arg in config.args:
        path = (Path(config.invocation_params.dir) / arg.split("::")[0]).resolve()
        if path == BENCHMARKS or BENCHMARKS in path.parents or path in BENCHMARKS.parents:
            return True
    return False


def _cases_or_usage_error(config):
    try:
        return _load(config)
    except StudyFileError as exc:
        raise pytest.UsageError(str(exc)) from None


def _load(config):
    """The collected studies' cases, loaded once per process."""
    state = state_of(config)
    if state.cases is None:
        overrides = parse_overrides(config.getoption("override"))
        state.cases = load_cases(config.getoption("configs") or [DEFAULT_CONFIGS], overrides)
    return state.cases


def session_of(config):
    """The session: opened on first use by the controller (under xdist in ``pytest_configure``,
    before any worker exists; alone, at the first case or the Slurm submission); a worker's came
    from the controller. Records an earlier session spooled for this store are replayed first."""
    state = state_of(config)
    if state.session is None:
        from harness.tracking import sessions, store

        uri = store.resolve_uri(config.getoption("mlflow_uri"), root=config.invocation_params.dir)
        config.hook.pytest_harness_before_session_store(config=config, uri=uri)
        spool_dir = _spool_dir(config)
        state.spool_lines += _replay_spool(spool_dir, uri).lines(spool_dir, uri)
        name = time.strftime("session-%Y%m%d-%H%M%S")
        try:
            state.session = sessions.open_session(
                uri, [c.experiment for c in _cases_or_usage_error(config)], name, spool=str(spool_dir)
            )
        except Exception as exc:
            _exit_if_unreachable(exc, uri)
            raise
    return state.session


def _exit_if_unreachable(exc: Exception, uri: str) -> None:
    """A store out of reach at the start: stop before any case spends compute (the spool keeps
    runs of an outage that begins later)."""
    from harness.tracking import spool

    if spool.is_unreachable(exc):
        pytest.exit(
            f"harness: the tracking store {spool.without_credentials(uri)} cannot be reached, so no "
            f"session was opened and no case ran: {spool.scrub(str(exc))[:500]}",
            returncode=1,
        )


def _spool_dir(config) -> Path:
    from harness.tracking import spool

    root = Path(config.invocation_params.dir)
    fallback = root / config.getoption("slurm_folder") / "spool" if config.getoption("executor") == "slurm" else None
    return spool.resolve_spool(config.getoption("spool"), root=root, fallback=fallback)


def _replay_spool(spool_dir: Path, uri: str):
    """Replay what waits in the spool for this store (``harness.tracking.spool.SyncResult``)."""
    from harness.analysis.summary import parent_metrics_of_runs
    from harness.tracking import spool

    return spool.replay(spool_dir, uri, parent_metrics_of_runs)


def executor_of(config):
    """The executor that opens each case's run (made once per process)."""
    state = state_of(config)
    if state.executor is None:
        from harness.execution.executors import LocalExecutor

        worker = config.workerinput["workerid"] if _is_worker(config) else "main"
        options = {
            "default_timeout_s": config.getoption("case_timeout"),
            "progress": _progress_writer(config),
            "setup_jax": True,
        }
        state.executor = LocalExecutor(session_of(config), worker, reuse=config.getoption("reuse"), options=options)
        if config.getoption("executor") == "slurm":
            from harness.execution.slurm import SlurmExecutor

            state.executor = SlurmExecutor(
                state.session,
                state.slurm_params,
                config.getoption("slurm_folder"),
                local=state.executor,
                default_timeout_s=config.getoption("case_timeout"),
                reuse=config.getoption("reuse"),
            )
    return state.executor


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist (controller): hand the session's store and parent runs to each worker."""
    session = state_of(node.config).session
    node.workerinput["harness_session"] = json.dumps(session.to_dict() if session else None)


def _has_gpu(config) -> bool:
    """Whether the cases get a GPU: this machine's (``--gpus`` or detected), or with
    ``--executor slurm`` the array's (``--slurm gpus_per_node=N`` and the like)."""
    state = state_of(config)
    if state.has_gpu is None:
        if config.getoption("executor") == "slurm":
            from harness.execution import slurm

            state.has_gpu = slurm.asks_for_gpu(slurm.parse_parameters(config.getoption("slurm")))
        else:
            listed = devices.parse_gpu_list(config.getoption("gpus"))
            state.has_gpu = bool(devices.detect_gpus() if listed is None else listed)
    return state.has_gpu


def _skip_reasons(config, cases) -> dict[str, str]:
    """case id -> why it is skipped on this machine (``requires``)."""
    reasons = {c.id: plan.skip_reason(c, _has_gpu(config), config.getoption("run_anywhere")) for c in cases}
    return {k: v for k, v in reasons.items() if v}


def _case_of(item):
    """The benchmark case a collected item runs, or None (an item of another test)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("case") if callspec is not None else None


def pytest_collection_modifyitems(config, items):
    reasons = _skip_reasons(config, [c for c in map(_case_of, items) if c is not None])
    for item in items:
        case = _case_of(item)
        if case is not None and case.id in reasons:
            item.add_marker(pytest.mark.skip(reason=reasons[case.id]))


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    try:
        cases, error = _load(metafunc.config), None
    except StudyFileError as exc:
        cases, error = [], str(exc)
    if error:
        pytest.fail(error, pytrace=False)
    params = []
    for case in cases:
        for mark in case.marks:
            metafunc.config.addinivalue_line("markers", f"{mark}: given by a study file")
        params.append(pytest.param(case, id=case.id, marks=[getattr(pytest.mark, m) for m in case.marks]))
    metafunc.parametrize("case", params)


def open_case_run(request):
    """The case's run (for the root conftest's ``case_run`` fixture): a new run, a reused one
    (``--reuse``), or the run of its Slurm task, as the executor decides."""
    case = request.node.callspec.params["case"]
    executor = executor_of(request.config)
    request.config.hook.pytest_harness_before_case_run(config=request.config, case=case)
    return executor.open_run(case)


def close_case_run(request, run) -> None:
    """Never leave the run RUNNING; send its record to the controller (through xdist's report)."""
    run.close()
    request.node.user_properties.append(("harness_case", json.dumps(run.record().to_dict())))


def _progress_writer(config):
    """Where a case's progress goes: stderr with ``-s`` (an xdist worker's stderr reaches the
    terminal); with a single process, the terminal even while pytest captures the output; else
    nowhere (a worker's captured output is only shown for a failed test)."""
    if config.getoption("capture") == "no":
        return True
    if _n_workers(config) > 0:
        return False
    capture = config.pluginmanager.getplugin("capturemanager")

    def write(text: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()

    return write


class Controller:
    """Hooks of the controller process only: collects case records, closes the session."""

    def __init__(self, config):
        self.config = config
        self.records: dict[str, CaseRecord] = {}
        self.gate_lines: list[str] = []
        self.gate_failed = False

    def pytest_collection_finish(self, session):
        """The only process (-n 0, or xdist with --collect-only): the plan of what was selected;
        with --executor slurm, the selected cases go out as one job array."""
        self._print_plan([item.nodeid for item in session.items])
        if self.config.getoption("executor") == "slurm" and not self.config.getoption("collectonly"):
            self._submit_to_slurm(session.items)

    def _submit_to_slurm(self, items) -> None:
        cases = [
            _case_of(item) for item in items if _case_of(item) is not None and item.get_closest_marker("skip") is None
        ]
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in executor_of(self.config).start(cases):
            reporter.write_line(line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        """xdist: every worker collects the same items; the first to finish gives the plan."""
        self._print_plan(ids)

    def _print_plan(self, node_ids: list[str]) -> None:
        if getattr(self, "_plan_printed", False):
            return
        selected = {nid.rpartition("[")[2].rstrip("]") for nid in node_ids if "test_case[" in nid}
        if not selected:
            return
        self._plan_printed = True
        cases = [c for c in _load(self.config) if c.id in selected]
        history = plan.History() if self.config.getoption("collectonly") else self._history(cases)
        lines = plan.plan_lines(
            cases,
            _skip_reasons(self.config, cases),
            history,
            _n_workers(self.config),
            reuse=self.config.getoption("reuse"),
        )
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in lines:
            reporter.write_line(line) if reporter else print(line)

    def _history(self, cases) -> plan.History:
        """Earlier runs of these cases in the store, for the time estimate."""
        from mlflow.tracking import MlflowClient

        from harness.tracking import sessions, store, tags
        from harness.tracking.provenance import harness_version

        try:
            uri = store.resolve_uri(self.config.getoption("mlflow_uri"), root=self.config.invocation_params.dir)
            experiments = sessions.experiment_ids(uri, {c.experiment for c in cases})
            if not experiments:  # (no client before the store exists: it would create it, unlocked)
                return plan.History()
            return tags.earlier_runs(MlflowClient(uri), experiments, harness_version())
        except Exception as exc:  # an estimate is not worth failing a session for
            print(f"harness: no time estimate ({type(exc).__name__}: {exc})")
            return plan.History()

    def pytest_runtest_logreport(self, report):
        # xdist forwards the workers' reports, with the record the fixture attached
        for name, value in report.user_properties:
            if name == "harness_case":
                record = CaseRecord.from_dict(json.loads(value))
                self.records[record.case_id] = record

    def pytest_sessionfinish(self, session, exitstatus):
        state = state_of(self.config)
        if state.session is None:  # the only process, and no case ran: no session opened
            if self.config.getoption("baseline") and exitstatus != pytest.ExitCode.INTERRUPTED:
                self.gate_lines.append(
                    "the gate compared nothing: no case ran in this session (every case was "
                    "deselected or skipped), so nothing could be compared with the baseline"
                )
                self.gate_failed = True
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        from harness.analysis import summary
        from harness.tracking import sessions

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        if state.executor is not None:
            state.executor.stop(interrupted)
        records = list(self.records.values())
        status = "KILLED" if interrupted else "FINISHED"
        spooled = [r for r in records if r.spooled]
        if spooled:  # the store may be back: replay now, so that the session ends complete
            spool_dir = Path(state.session.spool)
            replay = _replay_spool(spool_dir, state.session.uri)
            state.spool_lines += replay.lines(spool_dir, state.session.uri)
            for record in spooled:
                if record.spooled in replay.replayed:
                    record.run_id, record.spooled = replay.replayed[record.spooled], None
            spooled = [r for r in spooled if r.spooled]
        for orphan in sessions.close_session(state.session, summary.parent_metrics(records), status, spooled):
            self.records.setdefault(orphan.case_id, orphan)
        records = list(self.records.values())
        if self.config.getoption("results_csv") and records:
            summary.write_csv(records, self.config.getoption("results_csv"))
        if interrupted:
            return
        if self.config.getoption("save_baseline"):
            self.gate_lines.append(_save_baseline(self.config, records))
        if self.config.getoption("baseline"):
            lines, failed = _gate(self.config, records)
            self.gate_lines += lines
            if failed:
                self.gate_failed = True
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.records:
            self._print_gate(terminalreporter)
            return
        from harness.analysis import summary

        records = list(self.records.values())
        tr = terminalreporter
        tr.section("benchmark cases")
        ended = state_of(self.config).session.ended_stale
        if ended:
            tr.write_line(
                f"ended FAILED {len(ended)} run(s) left RUNNING by processes that died (no heartbeat): "
                + ", ".join(ended)
            )
        tr.write_line(summary.case_table(records))
        tr.section("learners (mean ± sd over seeds)")
        tr.write_line(summary.learner_table(records))
        overview = summary.paired_overview(records)
        if overview:
            tr.section("paired comparison (same seed, same data)")
            tr.write_line(overview)
            if self.config.getoption("verbose") > 0:
                tr.write_line("\nevery statement:\n" + summary.paired_lines(records))
            else:
                tr.write_line("every statement: pytest -v, or the report (dibs-bench report --experiment NAME)")
        spool_lines = state_of(self.config).spool_lines
        if spool_lines:
            tr.section("spool (runs kept while the tracking store was unreachable)")
            tr.write_line("\n".join(spool_lines))
        reused = sorted(r.case_id for r in records if r.reused)
        if reused:
            tr.write_line(f"\nreused {len(reused)} case(s) from earlier runs (--reuse): {', '.join(reused)}")
        self._print_gate(tr)
        if self.config.getoption("results_csv"):
            tr.write_line(f"\nper-case CSV: {self.config.getoption('results_csv')}")
        tr.write_line(f"\nopen the results: {summary.open_command(state_of(self.config).session.uri)}")

    def _print_gate(self, tr) -> None:
        if self.gate_lines:
            tr.section("regression gate (baseline)")
            tr.write_line("\n".join(self.gate_lines))
            if self.gate_failed:
                tr.write_line("the regression gate fails this session (exit status 1)", red=True, bold=True)


def _save_baseline(config, records: list[CaseRecord]) -> str:
    from harness.analysis import baseline
    from harness.tracking import provenance

    command = ["pytest", *config.invocation_params.args]
    meta = baseline.provenance(provenance.git_commit(), provenance.version_tags(), command)
    recorded = baseline.baseline_from_records(records, meta=meta)
    saved = baseline.save_baseline(recorded, config.getoption("save_baseline"))
    return f"saved a baseline of {len(recorded.cases)} finished case(s) of {len(records)} to {saved}"


def _gate(config, records: list[CaseRecord]) -> tuple[list[str], bool]:
    """The baseline comparison's lines, and whether it fails the session."""
    from harness.analysis import baseline
    from harness.tracking import sessions

    session = state_of(config).session
    try:
        base = baseline.load_baseline(
            config.getoption("baseline"),
            session.uri,
            list(session.parents),
            exclude_runs={ids["run_id"] for ids in session.parents.values()},
        )
    except baseline.BaselineError as exc:
        return [f"baseline gate failed: {exc}"], True
    effects = {c.id: c.config.get("regression", {}) for c in _load(config)}
    result = baseline.compare_with_baseline(records, base, effects)
    sessions.tag_session(session, {"baseline": base.source, "baseline_regressions": str(len(result.regressions))})
    return result.lines(), result.failed
