"""The spool: a run kept on disk while the tracking store cannot be reached, replayed later.

MLflow retries a failed request a few times (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``..._BACKOFF_FACTOR``, ``..._TIMEOUT``); a longer outage (a server restart, a database migration,
a partition between nodes) would lose the results of every case that ends during it. Instead the
case's writer (``harness.tracking.case_runs.RunWriter``) puts the run's whole record here: params,
tags, metrics with their steps and times, artifacts, status and failure reason, its run id if the
run was created before the outage, and the session's parent run it belongs to. A session that cannot
end its parent runs spools them too (a *session* record). :func:`replay` (``dibs-bench sync``, and
every session that reaches the store, at its start and its end) puts them into the store.

Format (our own, chosen over the alternatives): one directory per record, ``<uid>/record.json`` and
``<uid>/artifacts/``, written as ``.<uid>.partial`` and renamed when complete, so a reader never sees
half a record (a rename is atomic on NFS too, where a Slurm array's spool lives). Each artifact's
SHA-256 is in the record, so a damaged file is caught before anything is replayed.
``mlflow-export-import`` copies runs between stores that are both reachable, so it would need every
run written to a local store first; a local SQLite store as the spool is unsafe on the network file
systems that a Slurm array shares, and neither finishes a run that the server already has in place.

Guarantees:

- once only: the record's ``uid`` is set as a tag (:data:`RECORD_TAG`) on the run when it is created
  or taken over, before anything else is logged; a replay looks for it first, so a record replayed
  twice (or after a replay cut short) gives one run, and a run created before the outage is finished
  in place, never duplicated;
- a record is removed only after the store has been read back and holds everything in it (status,
  params, metrics, tags, artifacts with their sizes);
- a record that is half-written or corrupted is reported by name and skipped, never partly loaded;
  a replay stopped midway (SIGTERM, a second outage) leaves every record not yet confirmed in place;
- no secret: the URI is kept without its user and password, credentials stay in the environment of
  whoever replays; the spool and its records are readable by their owner only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

SPOOL_ENV = "HARNESS_SPOOL"
DEFAULT_DIR = "mlflow-spool"
RECORD_TAG = "harness.spool_record"  # on a run: the uid of the spooled record it was replayed from
REPLAYED_TAG = "harness.replayed"  # on a run: when it reached the store from the spool
FORMAT = 1


class Record(BaseModel):
    """One spooled run (``kind="case"``: a case's child run; ``"session"``: the end of a parent run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    uid: str
    kind: Literal["case", "session"]
    uri: str  # the store it was meant for, without credentials
    experiment: str
    session_name: str
    parent_run_id: str | None  # a case's parent (the session's run in its experiment)
    run_id: str | None  # the run itself, if it was created before the outage
    run_name: str
    status: Literal["FINISHED", "FAILED", "KILLED"]
    start_time: int  # ms since the epoch, as MLflow keeps them
    end_time: int
    tags: dict[str, str] = {}
    params: dict[str, str] = {}
    metrics: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
    artifacts: dict[str, str] = {}  # file name -> SHA-256
    reason: str = ""  # why it was spooled (the last error from the store)

    @field_validator("uri")
    @classmethod
    def _no_credentials_in_uri(cls, uri: str) -> str:
        return without_credentials(uri)

    @field_validator("reason")
    @classmethod
    def _no_credentials_in_reason(cls, text: str) -> str:
        return scrub(text)[:2000]


# ---------------------------------------------------------------------------------------------
# Where, and when
# ---------------------------------------------------------------------------------------------


def resolve_spool(cli_dir: str | None = None, root: Path | None = None, fallback: Path | None = None) -> Path:
    """``cli_dir`` (``--spool``), else ``$HARNESS_SPOOL``, else ``fallback`` (a Slurm session's
    ``<slurm folder>/spool``, on the disk its tasks share), else ``<root>/mlflow-spool``; absolute."""
    chosen = cli_dir or os.environ.get(SPOOL_ENV) or fallback or Path(root or ".") / DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store could not be reached after the client's retries (refused or
    timed-out connections, 5xx answers until the retries ran out, a SQLite file that cannot be
    opened or stays locked), as opposed to a request the store refused (a bad param, a missing run),
    which replaying would not cure."""
    import requests
    import urllib3

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(
            exc,
            (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.RetryError,
                urllib3.exceptions.MaxRetryError,
                ConnectionError,
                TimeoutError,
            ),
        ):
            return True
        text = str(exc)
        if "API request to" in text and "failed with exception" in text:  # MLflow's wrapper of the above
            return True
        if any(s in text for s in ("database is locked", "unable to open database file", "disk I/O error")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def without_credentials(uri: str) -> str:
    """``uri`` without a user and password (``http://u:p@host`` -> ``http://host``)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """``text`` with the user and password of every URL in it removed (an error names the URL)."""
    return _USERINFO.sub("", text)


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def new_uid() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex}"


def write(spool: Path, record: Record, artifact_dir: Path | None = None) -> Path:
    """Put ``record`` and the files of ``artifact_dir`` named in ``record.artifacts`` (their hashes
    are computed here) into the spool; returns the record's directory."""
    spool = Path(spool)
    if not spool.exists():
        spool.mkdir(parents=True, exist_ok=True)
        os.chmod(spool, 0o700)
    final, partial = spool / record.uid, spool / f".{record.uid}.partial"
    partial.mkdir(mode=0o700)
    (partial / "artifacts").mkdir(mode=0o700)
    hashes = {}
    for name in record.artifacts:
        target = partial / "artifacts" / name
        shutil.copyfile(Path(artifact_dir) / name, target)
        os.chmod(target, 0o600)
        hashes[name] = _sha256(target)
    record = record.model_copy(update={"artifacts": hashes})
    _write_private(partial / "record.json", record.model_dump_json(indent=1))
    os.rename(partial, final)
    return final


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass
class Pending:
    records: list[tuple[Path, Record]] = field(default_factory=list)  # complete, checked, oldest first
    problems: list[str] = field(default_factory=list)  # one line per record skipped


def pending(spool: Path) -> Pending:
    """The complete records of the spool, each checked (its JSON against :class:`Record`, each
    artifact against its hash); the rest named in ``problems`` and left where they are."""
    found = Pending()
    spool = Path(spool)
    if not spool.is_dir():
        return found
    for path in sorted(spool.iterdir()):
        if not path.is_dir() or path.name == ".lock":
            continue
        if path.name.endswith(".done"):  # a removal cut short: the store has confirmed it
            shutil.rmtree(path, ignore_errors=True)
            continue
        if path.name.endswith(".partial"):
            found.problems.append(f"{path}: a half-written record (its writer stopped or is still writing); skipped")
            continue
        try:
            found.records.append((path, read_record(path)))
        except (OSError, ValueError, ValidationError) as exc:
            found.problems.append(f"{path}: a corrupted record, skipped and left in place ({_first_line(exc)})")
    found.records.sort(key=lambda item: (item[1].kind == "session", item[1].end_time))  # cases first
    return found


def read_record(path: Path) -> Record:
    """The record in directory ``path``; ValueError if anything in it does not check out."""
    try:
        text = (path / "record.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError("no record.json") from None
    record = Record.model_validate_json(text)
    if record.uid != path.name:
        raise ValueError(f"record.json names uid {record.uid!r}, its directory {path.name!r}")
    for name, digest in record.artifacts.items():
        file = path / "artifacts" / name
        if not file.is_file():
            raise ValueError(f"artifact {name} is missing")
        if _sha256(file) != digest:
            raise ValueError(f"artifact {name} does not match its SHA-256")
    return record


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Replaying
# ---------------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    replayed: dict[str, str] = field(default_factory=dict)  # record directory -> the run id it became
    problems: list[str] = field(default_factory=list)
    left: int = 0  # records still in the spool for this store (not replayed)
    other_stores: dict[str, int] = field(default_factory=dict)  # uri -> records for it, not touched
    unreachable: str | None = None  # the error that stopped the replay

    def lines(self, spool: Path, uri: str) -> list[str]:
        out = []
        if self.replayed:
            out.append(f"replayed {len(self.replayed)} spooled run(s) from {spool} into {without_credentials(uri)}")
        if self.unreachable:
            out.append(
                f"the store is still unreachable ({self.unreachable}); {self.left} record(s) stay in {spool}: "
                f"replay them with `dibs-bench sync --spool {spool}` once it is back"
            )
        out += self.problems
        for other, n in sorted(self.other_stores.items()):
            out.append(
                f"{n} record(s) in {spool} are for another store, {other}: left for "
                f"`dibs-bench sync --spool {spool} --mlflow-uri {other}`"
            )
        return out


ParentMetrics = Callable[[str, list], dict]  # (experiment, child runs) -> the parent's metrics


def replay(
    spool: Path, uri: str, parent_metrics: ParentMetrics | None = None, from_uri: str | None = None
) -> SyncResult:
    """Replay the spool's records meant for ``uri`` (or for ``from_uri``, a store gone for good)
    into ``uri``, one process at a time (a lock file in the spool). ``parent_metrics`` recomputes a
    session parent's metrics from its child runs once records have joined it."""
    spool, result = Path(spool), SyncResult()
    if not spool.is_dir():
        return result
    source = without_credentials(from_uri or uri)
    with open(spool / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = pending(spool)
        result.problems += found.problems
        mine = [(p, r) for p, r in found.records if r.uri == source]
        for _, r in found.records:
            if r.uri != source:
                result.other_stores[r.uri] = result.other_stores.get(r.uri, 0) + 1
        if not mine:
            return result
        from mlflow.tracking import MlflowClient

        from harness.tracking.store import prepare_store

        client = MlflowClient(uri)
        parents: dict[str, tuple[str, str]] = {}  # parent run id -> (experiment id, experiment)
        for i, (path, record) in enumerate(mine):
            try:
                if i == 0:
                    prepare_store(uri)
                run_id, exp_id, parent_id = _replay_one(client, uri, record, path / "artifacts")
                _confirm(client, run_id, record, path / "artifacts")
            except Exception as exc:
                if is_unreachable(exc):
                    result.unreachable = _first_line(exc, 160)
                    result.left = len(mine) - i
                    break
                result.problems.append(f"{path}: not replayed, left in place ({_first_line(exc)})")
                continue
            _remove(path)
            result.replayed[str(path)] = run_id
            if parent_id:
                parents[parent_id] = (exp_id, record.experiment)
        if parent_metrics is not None and not result.unreachable:
            for parent_id, (exp_id, experiment) in parents.items():
                _refresh_parent(client, exp_id, experiment, parent_id, parent_metrics)
    return result


def _replay_one(client, uri: str, record: Record, artifacts: Path) -> tuple[str, str, str | None]:
    """(run id, experiment id, parent run id) of the run the record became."""
    from harness.tracking import tags as T
    from harness.tracking.experiments import experiment_id_of
    from harness.tracking.store import retry_locked

    exp_id = experiment_id_of(client, uri, record.experiment)
    if record.kind == "session":
        run_id = _session_parent(client, exp_id, record)
        retry_locked(client.set_tag, run_id, RECORD_TAG, record.uid)
        retry_locked(client.set_terminated, run_id, record.status, end_time=record.end_time)
        return run_id, exp_id, run_id
    run_id = _taken_over(client, exp_id, record)
    if run_id is None:
        parent = _session_parent(client, exp_id, record)
        tags = {**_own_tags(record), T.PARENT_TAG: parent, RECORD_TAG: record.uid}
        run_id = retry_locked(
            client.create_run, exp_id, start_time=record.start_time, tags=tags, run_name=record.run_name
        ).info.run_id
    _complete(client, run_id, record, artifacts)
    parent = retry_locked(client.get_run, run_id).data.tags.get(T.PARENT_TAG)
    return run_id, exp_id, parent


def _taken_over(client, exp_id: str, record: Record) -> str | None:
    """The run this record already became (an earlier replay), or the run created before the outage,
    now marked with the record's uid; None if neither exists."""
    from mlflow.exceptions import MlflowException

    from harness.tracking.store import retry_locked

    done = retry_locked(
        client.search_runs, [exp_id], filter_string=f"tags.`{RECORD_TAG}` = '{record.uid}'", max_results=2
    )
    if done:
        return done[0].info.run_id
    if record.run_id is None:
        return None
    try:
        run = retry_locked(client.get_run, record.run_id)
    except MlflowException as exc:
        if is_unreachable(exc):
            raise
        return None
    if run.info.lifecycle_stage != "active":
        retry_locked(client.restore_run, record.run_id)
    retry_locked(client.set_tag, record.run_id, RECORD_TAG, record.uid)
    return record.run_id


def _session_parent(client, exp_id: str, record: Record) -> str:
    """The session's parent run in this experiment: the recorded one (restored if it was deleted),
    else one of the session's name, else a new one (the parent never reached the store)."""
    from mlflow.exceptions import MlflowException

    from harness.tracking import tags as T
    from harness.tracking.store import retry_locked

    if record.parent_run_id:
        try:
            run = retry_locked(client.get_run, record.parent_run_id)
            if run.info.lifecycle_stage != "active":
                retry_locked(client.restore_run, record.parent_run_id)
            return record.parent_run_id
        except MlflowException as exc:
            if is_unreachable(exc):
                raise
    named = [r for r in T.sessions(client, exp_id) if r.info.run_name == record.session_name]
    if named:
        return named[0].info.run_id
    tags = {
        T.ROLE_TAG: T.SESSION_ROLE,
        REPLAYED_TAG: "the session's parent run never reached the store: created by dibs-bench sync",
    }
    parent = retry_locked(
        client.create_run, exp_id, start_time=record.start_time, tags=tags, run_name=record.session_name
    ).info.run_id
    retry_locked(client.set_terminated, parent, "FINISHED", end_time=record.end_time)
    return parent


def _complete(client, run_id: str, record: Record, artifacts: Path) -> None:
    """Log what the run lacks of the record (a run created before the outage may hold part of it),
    then end it with the record's status and end time."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    from harness.tracking import tags as T
    from harness.tracking.store import retry_locked

    run = retry_locked(client.get_run, run_id)
    have = run.data
    params = [Param(k, v) for k, v in record.params.items() if k not in have.params]
    tags = [RunTag(k, v) for k, v in _own_tags(record).items() if have.tags.get(k) != v]
    tags.append(RunTag(REPLAYED_TAG, time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    logged = {
        key: {(m.step, m.timestamp, m.value) for m in retry_locked(client.get_metric_history, run_id, key)}
        for key in have.metrics
    }
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in record.metrics if (step, ts, v) not in logged.get(k, ())]
    for i in range(0, max(len(params), len(tags)), MAX_PARAMS_TAGS_PER_BATCH):
        retry_locked(
            client.log_batch,
            run_id,
            params=params[i : i + MAX_PARAMS_TAGS_PER_BATCH],
            tags=tags[i : i + MAX_PARAMS_TAGS_PER_BATCH],
        )
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        retry_locked(client.log_batch, run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
    if record.artifacts:
        retry_locked(client.log_artifacts, run_id, str(artifacts))
    if T.FAILURE_TAG in have.tags and T.FAILURE_TAG not in record.tags:  # ended FAILED as stale meanwhile
        retry_locked(client.delete_tag, run_id, T.FAILURE_TAG)
    retry_locked(client.set_terminated, run_id, record.status, end_time=record.end_time)


def _own_tags(record: Record) -> dict[str, str]:
    """The record's tags but its parent's id, which the replay settles (the recorded parent may be
    gone, or may never have reached the store)."""
    from harness.tracking import tags as T

    return {k: v for k, v in record.tags.items() if k != T.PARENT_TAG}


def _confirm(client, run_id: str, record: Record, artifacts: Path) -> None:
    """Read the run back: it must hold the whole record (else the record stays)."""
    from harness.tracking.store import retry_locked

    run = retry_locked(client.get_run, run_id)
    missing = []
    if run.info.status != record.status:
        missing.append(f"status {run.info.status}, not {record.status}")
    missing += [f"param {k}" for k, v in record.params.items() if run.data.params.get(k) != v]
    missing += [f"tag {k}" for k, v in _own_tags(record).items() if run.data.tags.get(k) != v]
    missing += [f"metric {k}" for k in {m[0] for m in record.metrics} if k not in run.data.metrics]
    if record.artifacts:
        stored = {a.path: a.file_size for a in retry_locked(client.list_artifacts, run_id)}
        for name in record.artifacts:
            size = stored.get(name)
            if size is None or size != (artifacts / name).stat().st_size:
                missing.append(f"artifact {name}")
    if missing:
        raise ValueError(f"the store does not hold all of it after replay: {', '.join(missing[:5])}")


def _remove(path: Path) -> None:
    """Gone from the spool in one atomic step (the rename); the files after."""
    done = path.with_name(f".{path.name}.done")
    os.rename(path, done)
    shutil.rmtree(done, ignore_errors=True)


def _refresh_parent(client, exp_id: str, experiment: str, parent_id: str, parent_metrics: ParentMetrics) -> None:
    from mlflow.entities import Metric

    from harness.tracking import tags as T
    from harness.tracking.store import retry_locked

    children = T.children(client, exp_id, parent_id)
    metrics = parent_metrics(experiment, children)
    now = now_ms()
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), 1000):
        retry_locked(client.log_batch, parent_id, metrics=items[i : i + 1000])
