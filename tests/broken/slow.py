"""A learner that takes a while, then answers like ``random``: for a case still running when its
session dies."""

import os
import time

from harness.learners.random_dags import Settings, fit as random_fit  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    time.sleep(float(os.environ.get("HARNESS_SLOW_S", "20")))
    return random_fit(dataset, config, settings, key, monitor)
