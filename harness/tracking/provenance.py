"""What produced a result: the harness's and its main dependencies' versions, and the git commit."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "dibs-bench-harness"  # pyproject.toml's project name: its version is the harness's


def _installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def harness_version() -> str:
    """The installed harness's version (one definition: ``pyproject.toml``); runs of the same config
    hash and version are interchangeable (``--reuse``)."""
    return _installed_version(DISTRIBUTION)


@functools.cache
def version_tags() -> dict[str, str]:
    v = _installed_version
    return {
        "harness_version": harness_version(),
        "dibs_version": v("dibs-lib"),
        "jax_version": v("jax"),
        "mlflow_version": v("mlflow"),
        "python_version": platform.python_version(),
    }


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
