"""What produced a result: the harness's and its main dependencies' versions, and the git commit."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import harness


@functools.cache
def version_tags() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "unknown"

    return {
        "harness_version": harness.__version__,
        "dibs_version": v("dibs-lib"),
        "jax_version": v("jax"),
        "mlflow_version": v("mlflow"),
        "python_version": platform.python_version(),
    }


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(harness.__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
