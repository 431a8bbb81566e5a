"""Learners that break on purpose, for the tests (registered through ``HARNESS_LEARNERS`` in
``tests/conftest.py``)."""

import os
from pathlib import Path


def tell_the_test_it_is_ready() -> None:
    """Create the file that ``$BROKEN_LEARNER_READY`` names, if set: how a learner tells the test
    driving its session that it has reached the point where the test means to signal it."""
    if os.environ.get("BROKEN_LEARNER_READY"):
        Path(os.environ["BROKEN_LEARNER_READY"]).touch()
