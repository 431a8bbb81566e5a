"""Helpers for the harness tests: study files in temp dirs, pytest run as a user runs it."""

from __future__ import annotations

import copy
import fcntl
import itertools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.tracking.store import sqlite_uri

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "data": {
        "graph": {"type": "er", "n_vars": 4, "edges_per_node": 1},
        "model": {"type": "linear_gaussian"},
        "n_observations": 30,
        "n_ho_observations": 30,
        "interventions": {"n_sets": 2},
    },
    "learners": {"random": {"n_particles": 5}},
}
# short DiBS runs; shared `inference` keys, so only for studies with a DiBS learner (a key no
# learner takes is an error)
TINY_INFERENCE = {"steps": 20, "n_grad_mc_samples": 8, "n_acyclicity_mc_samples": 4}
DIBS_LEARNERS = {"svgd", "ensemble", "transposed_svgd"}


# Longest first: the modules whose tests wait on Slurm or the MLflow server, then those whose tests
# each run whole benchmark sessions in subprocesses (20-60 s a test); the last tests are then short
# ones, and the waits overlap with other tests. xdist sends each worker only one or two tests at a
# time here (maxschedchunk 1): by default it sends a worker its first 38 tests in one batch and
# cannot take them back, so one worker got every long test and ended 220 s after the other. In
# collection order the two workers of `pytest tests -n 2` ended 50 s apart.
LONGEST_FIRST = [
    "test_remote_server.py",
    "test_outage.py",
    "test_plugin.py",
    "test_sessions.py",
    "test_gate_sessions.py",
    "test_history.py",
    "test_report.py",
]


def pytest_configure(config):
    if getattr(config.option, "maxschedchunk", "absent") is None:  # xdist's, unless given on the command line
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order


def tiny_study(**changes) -> dict:
    """TINY with ``changes``; with a DiBS learner and no ``inference`` given, TINY_INFERENCE."""
    s = copy.deepcopy(TINY)
    s.update(changes)
    if "inference" not in changes and DIBS_LEARNERS & set(s.get("learners") or {}):
        s["inference"] = dict(TINY_INFERENCE)
    return s


def session_root(tmp_path_factory, worker_id: str) -> Path:
    """A temp directory shared by all xdist workers of this test session (or the only process's)."""
    root = tmp_path_factory.getbasetemp()
    return root if worker_id == "master" else root.parent


@pytest.fixture(scope="session", autouse=True)
def test_compile_cache(worker_id):
    """Everything the tests compile (in this process, and in the benchmark sessions it starts) goes
    to one persistent cache of the tests, ``.jax_cache/tests/`` (``HARNESS_TEST_JAX_CACHE`` names
    another), kept apart from the studies' ``.jax_cache/``: the edit-and-test loop then compiles
    only what changed since the last run. Results do not depend on the cache (the cache test
    checks, in its own directories; so do the tests that count compilations). JAX writes entries
    atomically, so concurrent workers are safe. Set before the first ``configure_jax``, which reads
    it once per process, and applied here so that the tests' own jitted functions are cached too."""
    from harness.execution.jax_setup import configure_jax

    path = Path(os.environ.get("HARNESS_TEST_JAX_CACHE") or ROOT / ".jax_cache" / "tests")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["HARNESS_JAX_CACHE"] = str(path)
    configure_jax()


def built_once(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """A directory that ``build(path)`` fills once per test session, whichever xdist worker asks
    first; the others wait for it and reuse it. (A session fixture alone is built by every worker
    that runs one of its tests, and ``--dist loadgroup`` cannot keep them on one worker here:
    pytest-xdist 3.8 marks a group by rewriting ``item._nodeid``, which pytest 9 no longer reads.)"""
    root = session_root(tmp_path_factory, worker_id)
    path = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / ".built").exists():
            path.mkdir(exist_ok=True)
            build(path)
            (path / ".built").touch()
    return path


@pytest.fixture
def write_study(tmp_path):
    """write_study(dict or text, name=...) -> path of a study file in a temp dir."""

    def write(content, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


def benchmark_command(args: list[str], tmp_path: Path, env: dict | None = None) -> tuple[list[str], dict]:
    """``python -m pytest benchmarks ...`` as a user types it, with its own MLflow store in
    ``tmp_path`` unless ``env`` says otherwise: (command, environment). The JAX compile cache is
    the test session's temporary one, shared by its sessions (compiling the same tiny step loops
    in every session is most of a short session's time; results do not depend on the cache)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLFLOW_"))}
    db = tmp_path / "mlflow.db"
    full_env.update(
        {
            "MLFLOW_TRACKING_URI": sqlite_uri(db),
            "HARNESS_LEARNERS": "crash=tests.broken.crash,nan_theta=tests.broken.nan_theta,"
            "transposed_svgd=tests.broken.transposed_svgd,die=tests.broken.die,sleepy=tests.broken.sleepy,stuck_in_c=tests.broken.stuck_in_c,swallows_stop=tests.broken.swallows_stop,slow=tests.broken.slow,"
            "env_probe=tests.broken.env_probe,gated=tests.broken.gated",
            "PYTHONPATH": str(ROOT),
        }
    )
    full_env.update(env or {})
    return [sys.executable, "-m", "pytest", "benchmarks", *args], full_env


def heed_sigint() -> None:
    """``preexec_fn`` for a session that a test interrupts with SIGINT, as Ctrl-C would: SIGINT back
    to its default action. A shell starts background jobs with SIGINT ignored and children inherit
    that; Python then installs no KeyboardInterrupt handler, and the session never hears the signal
    (both Ctrl-C tests hung until their deadline when CI was started as a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def edge_graphs(*edge_lists, d: int) -> np.ndarray:
    """0/1 adjacency matrices [M, d, d], one per list of (i, j) edges (i -> j)."""
    g = np.zeros((len(edge_lists), d, d), dtype=np.int32)
    for m, edges in enumerate(edge_lists):
        for i, j in edges:
            g[m, i, j] = 1
    return g


def dibs_lib_likelihood(model: dict, d: int):
    """dibs-lib's own model class for a study's ``data.model`` section (the tests' reference, written
    from dibs-lib's signatures, not through the harness's mapping)."""
    from dibs.models import DenseNonlinearGaussian, LinearGaussian

    if model["type"] == "linear_gaussian":
        return LinearGaussian(
            n_vars=d,
            obs_noise=model["obs_noise"],
            mean_edge=model["mean_edge"],
            sig_edge=model["sig_edge"],
            min_edge=model["min_edge"],
        )
    return DenseNonlinearGaussian(
        n_vars=d,
        hidden_layers=tuple(model["hidden_layers"]),
        obs_noise=model["obs_noise"],
        sig_param=model["sig_param"],
    )


def acyclic_matrices(d: int) -> np.ndarray:
    """Every acyclic 0/1 matrix on d nodes, by brute force over all 2^(d(d-1)) off-diagonal patterns
    (a reference that does not use the enumeration under test)."""
    from harness.models.graphs import is_cyclic

    off = [(i, j) for i in range(d) for j in range(d) if i != j]
    mats = np.zeros((2 ** len(off), d, d), dtype=np.int32)
    for k, bits in enumerate(itertools.product((0, 1), repeat=len(off))):
        for (i, j), b in zip(off, bits):
            mats[k, i, j] = b
    return mats[~is_cyclic(mats)]


def outcome(stdout: str) -> dict[str, int]:
    """The counts of a pytest session's closing line (``4 failed, 2 passed, 1 warning in 9.1s``):
    ``{"failed": 4, "passed": 2}``, 0 for an outcome it does not name (exact, where a substring
    check would take "12 passed" for "2 passed")."""
    closing = [
        line
        for line in stdout.splitlines()
        if re.search(r"\b(passed|failed|errors?|no tests ran)\b.* in [\d.]+s", line)
    ]
    assert closing, f"no closing line in the session's output: {stdout[-2000:]}"
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", closing[-1]):
        counts[word.rstrip("s") if word.startswith("error") else word] = int(n)
    return counts


def run_pytest(args: list[str], tmp_path: Path, env: dict | None = None, timeout: int = 600):
    """Run :func:`benchmark_command` from the repo root and wait for it."""
    cmd, full_env = benchmark_command(args, tmp_path, env)
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
