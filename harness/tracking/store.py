"""Where the runs live: the tracking URI, the store's creation, and retries on a busy SQLite file.

The embedded store for one machine is a SQLite file (``mlruns/mlflow.db``), with artifacts beside
it; many machines share an ``mlflow server`` (docs/cluster.md).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path


def disable_mlflow_telemetry() -> None:
    """MLflow's usage telemetry off in this process and those it starts (xdist workers, Slurm tasks
    inherit the environment): a study sends nothing anywhere but to its tracking store, and MLflow
    3.17's telemetry thread races with requests of other threads (a heartbeat), failing them with
    KeyError '_MLFLOW_TELEMETRY_SESSION_ID' (seen in a Slurm task). ``MLFLOW_DISABLE_TELEMETRY=false``
    in the environment keeps it on. Called by the pytest plugin and the console script, not on import."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def resolve_uri(cli_uri: str | None = None, root: Path | None = None) -> str:
    """``cli_uri`` (``--mlflow-uri``) if given, else ``MLFLOW_TRACKING_URI``, else the embedded SQLite
    store under ``<root>/mlruns`` (made absolute so every process, whatever its cwd, uses the same
    file): the option a user typed beats the environment (DESIGN.md, "Tracking")."""
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI")
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
    the loser fails with "table ... already exists"). A server creates its own store.

    A new store starts as a copy of :func:`empty_store_template`: MLflow's 68 schema migrations
    took ~1.2 s per new store (every test's, every fresh study's); the copy takes milliseconds."""
    if not is_local_sqlite(uri):
        return
    db = db_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        from mlflow.tracking import MlflowClient

        if not db.exists() or db.stat().st_size == 0:
            _copy_atomically(empty_store_template(), db)
        # MLflow checks the schema's revision and adds the Default experiment (artifacts under the cwd)
        retry_locked(MlflowClient(uri).search_experiments, max_results=1)


def empty_store_template() -> Path:
    """A SQLite file with MLflow's tables at this MLflow version's schema and no experiment, made by
    MLflow itself once per version in the user's cache (``$XDG_CACHE_HOME/dibs-bench``, else
    ``~/.cache/dibs-bench``) and reused for every new store."""
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dibs-bench"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        cache.mkdir(parents=True, exist_ok=True)
        scratch = cache / f"{template.name}.{os.getpid()}.tmp"
        from mlflow.tracking import MlflowClient

        MlflowClient(sqlite_uri(scratch)).search_experiments(max_results=1)  # runs the migrations
        _drop_default_experiment(scratch)
        os.replace(scratch, template)  # atomic: a concurrent reader sees no file or the whole one
    return template


def _drop_default_experiment(db: Path) -> None:
    """MLflow recreates it on a store's first use, with that store's artifact location."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
        connection.execute("DELETE FROM experiments WHERE experiment_id = 0")
    connection.close()


def _copy_atomically(source: Path, target: Path) -> None:
    scratch = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, scratch)
    os.replace(scratch, target)


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
