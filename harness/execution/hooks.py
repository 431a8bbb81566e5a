"""Hooks the harness calls at the moments where processes of several sessions may meet, for
plugins that want to act there (``-p module``); the harness itself implements none.

The tests use them to make sessions collide on purpose (``tests/barrier_plugin.py``: every session
waits at each hook until all have arrived), instead of hoping a loaded machine lines them up.
"""

import pytest


@pytest.hookspec
def pytest_harness_before_session_store(config, uri):
    """Called once per controller process just before it creates or opens the session's tracking
    store (``uri``) and its experiments and parent runs."""


@pytest.hookspec
def pytest_harness_before_case_run(config, case):
    """Called in the process that runs ``case`` just before its run is opened (created, or found for
    ``--reuse``)."""
