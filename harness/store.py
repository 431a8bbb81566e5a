"""Where the runs live: the tracking URI, the store's creation, and retries on a busy SQLite file.

The embedded store for one machine is a SQLite file (``mlruns/mlflow.db``), with artifacts beside
it; many machines share an ``mlflow server`` (docs/cluster.md).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Callable

PARENT_TAG = "mlflow.parentRunId"


def resolve_uri(cli_uri: str | None = None, root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``cli_uri``, else the embedded SQLite store under
    ``<root>/mlruns`` (made absolute so every process, whatever its cwd, uses the same file)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cli_uri
    if uri:
        return uri
    db = (Path(root or ".") / "mlruns" / "mlflow.db").resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return sqlite_uri(db)


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_uri(db: Path) -> str:
    """The tracking URI of the SQLite store in file ``db`` (absolute paths give four slashes)."""
    return f"sqlite:///{db}"


def db_path(uri: str) -> Path:
    """The file of a local SQLite store's URI; the inverse of ``sqlite_uri``."""
    return Path(uri.removeprefix("sqlite:///"))


def artifact_root(uri: str) -> str | None:
    """Where a new experiment's artifacts go: beside a local SQLite store (``mlruns/``); for a
    server, its own default (``None``)."""
    if not is_local_sqlite(uri):
        return None
    return (db_path(uri).parent / "artifacts").resolve().as_uri()


def prepare_store(uri: str) -> None:
    """Create a local SQLite store's tables under a file lock, so that sessions started at the
    same moment on a fresh store do not race to create them (MLflow creates them on first use, and
    the loser fails with "table ... already exists"). A server creates its own store."""
    if not is_local_sqlite(uri):
        return
    db = db_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        from mlflow.tracking import MlflowClient

        retry_locked(MlflowClient(uri).search_experiments, max_results=1)


def retry_locked(fn: Callable, *args, attempts: int = 30, **kwargs):
    """Call ``fn``, retrying while SQLite says the database is locked (several writers)."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MlflowException or sqlalchemy OperationalError
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")
