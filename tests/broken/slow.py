"""A learner that takes a while, then answers like ``random``: for a case still running when its
session dies. It waits until the file that ``$BROKEN_LEARNER_GO`` names exists (the test's cue), or
``$HARNESS_SLOW_S`` seconds (default 20) have passed."""

import os
import time
from pathlib import Path

from harness.learners.random import Settings  # noqa: F401
from harness.learners.random import fit as random_fit


def fit(dataset, config, settings, key, monitor=None):
    go = os.environ.get("BROKEN_LEARNER_GO")
    deadline = time.monotonic() + float(os.environ.get("HARNESS_SLOW_S", "20"))
    while time.monotonic() < deadline and not (go and Path(go).exists()):
        time.sleep(0.2)
    return random_fit(dataset, config, settings, key, monitor)
