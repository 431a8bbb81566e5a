"""Learner registry.

A learner is one module in this package that defines

- ``Settings``: a pydantic model of its keys (a subclass of ``InferenceSettings`` if it takes the
  shared DiBS settings under ``inference:``), and
- ``fit(dataset, settings, key) -> Posterior``.

Adding a learner is that module plus one entry in ``REGISTRY``. Modules must not import JAX at
import time: the registry is read while studies are validated at collection.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY: dict[str, str] = {
    "svgd": "harness.learners.svgd",
    "ensemble": "harness.learners.ensemble",
    "random": "harness.learners.random_dags",
}


def learner_module(name: str) -> ModuleType:
    """The module implementing learner ``name`` (KeyError if none is registered)."""
    return importlib.import_module(REGISTRY[name])


def settings_class(name: str):
    return learner_module(name).Settings
