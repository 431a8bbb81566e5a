"""Learners from other packages: an installed package adds one through the entry-point group
``dibs_bench.learners`` (no HARNESS_LEARNERS); a broken one is refused for the study that names it,
saying which package and module, and changes nothing for the others."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.conftest import ROOT, outcome, run_pytest, tiny_study

pytestmark = pytest.mark.integration  # every test here starts pytest sessions, servers or Slurm

# what `[project.entry-points."dibs_bench.learners"]` in a package's pyproject.toml puts in its wheel
ENTRY_POINTS = """[dibs_bench.learners]
echo = extra_learners.echo
needs_missing = extra_learners.needs_missing
"""

ECHO = '''
"""A learner of another package: the random learner's DAGs, a fixed number of them."""
from pydantic import PositiveInt

from harness.data.spec import Strict


class Settings(Strict):
    n_particles: PositiveInt = 3


def fit(dataset, config, settings, key, monitor=None):
    from harness.learners import random as random_learner

    return random_learner.fit(dataset, config, random_learner.Settings(n_particles=settings.n_particles), key)
'''


def build_wheel(tmp_path):
    """A wheel of the package ``harness-extra-learners`` (built by hand: no build backend needed)."""
    info = "harness_extra_learners-0.1.dist-info"
    files = {
        "extra_learners/__init__.py": "",
        "extra_learners/echo.py": ECHO,
        "extra_learners/needs_missing.py": "import a_dependency_that_is_not_installed\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: harness-extra-learners\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": ENTRY_POINTS,
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    wheel = tmp_path / "harness_extra_learners-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return wheel


def install_package(tmp_path):
    """pip-installs the package into a temporary location, as a user's own package would be installed."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(build_wheel(tmp_path)),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (site / "harness_extra_learners-0.1.dist-info" / "entry_points.txt").is_file()
    return site


def test_an_installed_package_adds_a_learner_and_a_broken_one_is_refused_alone(tmp_path, write_study):
    site = install_package(tmp_path)
    env = {"PYTHONPATH": f"{ROOT}:{site}", "HARNESS_LEARNERS": ""}
    good = write_study(tiny_study(name="plugin", learners={"echo": {"n_particles": 4}}), name="good.yaml")
    proc = run_pytest(["--configs", str(good)], tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert outcome(proc.stdout)["passed"] == 2 and "plugin-s0-echo" in proc.stdout
    bad = write_study(tiny_study(name="broken", learners={"needs_missing": {}}), name="bad.yaml")
    proc = run_pytest(["--configs", str(bad)], tmp_path, env=env)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (
        f"{bad}: key 'learners.needs_missing': learner 'needs_missing' (entry point 'needs_missing = "
        "extra_learners.needs_missing' of package 'harness-extra-learners'): its module "
        "'extra_learners.needs_missing' cannot be imported: ModuleNotFoundError: No module named "
        "'a_dependency_that_is_not_installed'"
    ) in out, out[-3000:]
    # collecting with the package installed still imports neither JAX nor mlflow
    probe = textwrap.dedent(f"""
        import sys
        from harness.study.loading import load_study
        cases = load_study({str(good)!r})
        assert [c.learner for c in cases] == ["echo", "echo"]
        assert "jax" not in sys.modules and "mlflow" not in sys.modules, sorted(m for m in sys.modules if m in ("jax", "mlflow"))
        print("LEAN")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": "/usr/bin:/bin"},
    )
    assert "LEAN" in proc.stdout, proc.stderr[-3000:]
