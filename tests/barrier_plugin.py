"""A test-only pytest plugin (``-p tests.barrier_plugin``): every session started with it waits at
the harness's hooks (``harness.execution.hooks``) until ``HARNESS_TEST_BARRIER_N`` sessions have
arrived there, so that they create the store and open their first runs at the same moment.

Each arrival writes a file ``<hook>.<pid>`` (with its arrival and release times) under
``HARNESS_TEST_BARRIER_DIR``; the test reads them to show the meeting happened.
"""

import os
import time
from pathlib import Path

TIMEOUT_S = 120


def _wait_for_all(hook: str) -> None:
    where = Path(os.environ["HARNESS_TEST_BARRIER_DIR"])
    n = int(os.environ["HARNESS_TEST_BARRIER_N"])
    mine = where / f"{hook}.{os.getpid()}"
    arrived = time.time()
    mine.write_text(f"{arrived}\n")
    deadline = time.monotonic() + TIMEOUT_S
    while len(list(where.glob(f"{hook}.*"))) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(where.glob(f'{hook}.*')))} of {n} sessions reached {hook}")
        time.sleep(0.01)
    mine.write_text(f"{arrived}\n{time.time()}\n")


def pytest_harness_before_session_store(config, uri):
    _wait_for_all("store")


_first_case_done = False


def pytest_harness_before_case_run(config, case):
    global _first_case_done
    if not _first_case_done:  # the first run of each session: they meet there too
        _first_case_done = True
        _wait_for_all("first_run")
