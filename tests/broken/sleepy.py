"""A learner that takes long: for interrupting a session mid-case."""

import time

from harness.learners.random import Settings  # noqa: F401
from tests.broken import tell_the_test_it_is_ready


def fit(dataset, config, settings, key, monitor=None):
    tell_the_test_it_is_ready()
    time.sleep(120)
    raise AssertionError("should have been interrupted")
