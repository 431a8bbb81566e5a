"""A learner that raises: its case must end FAILED with a traceback, the others unharmed."""

from harness.learners.random import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    raise RuntimeError("deliberate failure inside the learner")
