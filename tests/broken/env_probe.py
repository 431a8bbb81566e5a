"""``random``, plus a line per case in ``$HARNESS_PROBE_FILE``: the worker and the device
environment it ran under (for testing ``--gpus`` end to end on a machine without GPUs)."""

import json
import os

from harness.learners.random import Settings  # noqa: F401
from harness.learners.random import fit as random_fit

SEEN = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "HARNESS_DEVICE", "JAX_PLATFORMS")


def fit(dataset, config, settings, key, monitor=None):
    line = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "main")} | {v: os.environ.get(v) for v in SEEN}
    with open(os.environ["HARNESS_PROBE_FILE"], "a") as f:
        f.write(json.dumps(line) + "\n")
    return random_fit(dataset, config, settings, key, monitor)
