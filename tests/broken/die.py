"""A learner whose process dies mid-case (as if killed or out of memory)."""

import os

from harness.learners.random import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    os._exit(137)
