"""A learner in whose first long call the session's stop signal lands and is swallowed, as one is
when it lands in a bare ``except:`` of JAX's around a freshly compiled executable
(``jax/_src/interpreters/pxla.py``); then it goes on, calling the monitor between chunks of work as
the harness's learners do."""

import time

from harness.learners.random import Settings  # noqa: F401
from tests.broken import tell_the_test_it_is_ready


def fit(dataset, config, settings, key, monitor=None):
    tell_the_test_it_is_ready()
    try:
        time.sleep(120)
    except BaseException:
        pass  # the swallowing under test
    for done in range(1, 1201):
        time.sleep(0.1)
        monitor.after_chunk(done, 1200, lambda: (None, None))
    raise AssertionError("should have been interrupted")
