"""A learner that takes long: for interrupting a session mid-case."""

import time

from harness.learners.random_dags import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    time.sleep(120)
    raise AssertionError("should have been interrupted")
