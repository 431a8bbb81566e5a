"""A learner that answers like ``random`` when the test driving its session lets it: on start it
creates ``$GATE_DIR/started-<seed>``, then waits for ``$GATE_DIR/go-<seed>`` (at most
``$HARNESS_SLOW_S`` seconds, default 120). For taking the tracking server away while chosen cases
are running."""

import os
import time
from pathlib import Path

from harness.learners.random import Settings  # noqa: F401
from harness.learners.random import fit as random_fit


def fit(dataset, config, settings, key, monitor=None):
    gate, seed = Path(os.environ["GATE_DIR"]), config["seeds"][0]
    (gate / f"started-{seed}").touch()
    deadline = time.monotonic() + float(os.environ.get("HARNESS_SLOW_S", "120"))
    while time.monotonic() < deadline and not (gate / f"go-{seed}").exists():
        time.sleep(0.1)
    return random_fit(dataset, config, settings, key, monitor)
