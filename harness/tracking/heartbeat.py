"""Telling a live run from one whose process died: heartbeats.

A process that owns a RUNNING run (the controller its parent runs, a worker or a Slurm task its
case run) refreshes the run's ``harness.heartbeat`` tag (Unix time) every ``interval`` seconds
from a daemon thread, and records the interval in ``harness.heartbeat_interval_s``. A run whose
last heartbeat is older than :data:`STALE_AFTER` of its own intervals belongs to a process that
died without ending it (SIGKILL, out of memory, a lost node): a later session ends it FAILED
(:func:`end_stale_runs`). A live session's runs are never touched, whatever host they run on, and
no clock but the store's writers' is needed (hosts' clocks are assumed to agree within minutes).

RUNNING runs without a heartbeat (recorded before the harness had heartbeats) are left alone:
nothing tells whether their process still lives.

``HARNESS_HEARTBEAT_S`` sets the interval (default 60 s); a run is stale after 5 intervals.
"""

from __future__ import annotations

import os
import threading
import time

from mlflow.tracking import MlflowClient

from harness.tracking.store import retry_locked
from harness.tracking.tags import BEAT_TAG, FAILURE_TAG, INTERVAL_TAG, runs_with_status

STALE_AFTER = 5


def interval_s() -> float:
    return float(os.environ.get("HARNESS_HEARTBEAT_S", "60"))


class Heartbeat:
    """Refresh the heartbeat of ``run_ids`` until :meth:`stop`."""

    def __init__(self, uri: str, run_ids: list[str], interval: float | None = None):
        self.client = MlflowClient(uri)
        self.run_ids = list(run_ids)
        self.interval = interval or interval_s()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name="harness-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        for run_id in self.run_ids:
            retry_locked(self.client.set_tag, run_id, INTERVAL_TAG, f"{self.interval:g}")
        retry_locked(self._beat)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat_until_stopped(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._beat()
            except Exception:  # a busy store: the next beat comes soon; staleness allows for misses
                pass

    def _beat(self) -> None:
        now = f"{time.time():.3f}"
        for run_id in self.run_ids:
            self.client.set_tag(run_id, BEAT_TAG, now)


def is_stale(run, now: float | None = None) -> bool:
    """Whether a RUNNING run's owner stopped beating (False for a run without heartbeat)."""
    tags = run.data.tags
    if BEAT_TAG not in tags:
        return False
    interval = float(tags.get(INTERVAL_TAG, interval_s()))
    return (now or time.time()) - float(tags[BEAT_TAG]) > STALE_AFTER * interval


def end_stale_runs(client: MlflowClient, experiment_ids: list[str], ended_by: str) -> list:
    """End FAILED every RUNNING run of these experiments whose heartbeat is stale; return them."""
    if not experiment_ids:
        return []
    running = runs_with_status(client, experiment_ids, "RUNNING")
    ended = []
    for run in running:
        if not is_stale(run):
            continue
        ago = time.time() - float(run.data.tags[BEAT_TAG])
        reason = (
            f"its process stopped without ending it (killed, out of memory, lost node): no heartbeat for "
            f"{ago:.0f} s; ended FAILED by {ended_by}"
        )
        retry_locked(client.set_tag, run.info.run_id, FAILURE_TAG, reason)
        retry_locked(client.set_terminated, run.info.run_id, "FAILED")
        ended.append(run)
    return ended
