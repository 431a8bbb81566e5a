"""Learner registry.

A learner is one module in this package that defines

- ``Settings``: a pydantic model of its keys (a subclass of ``InferenceSettings`` if it takes the
  shared DiBS settings under ``inference:``), and
- ``fit(dataset, config, settings, key, monitor=None) -> Posterior``, and optionally
- ``check_data(data) -> str | None``: why the learner cannot run on a study's ``data`` section
  (refused at collection with that reason), or None.

Adding a learner is that module plus one entry in ``REGISTRY``. Modules must not import JAX at
import time: the registry is read while studies are validated at collection.

Learners that live outside this package (a user's experiment, the deliberately broken learners
of the tests) are added with ``HARNESS_LEARNERS="name=module.path,other=pkg.mod"``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

REGISTRY: dict[str, str] = {
    "svgd": "harness.learners.svgd",
    "ensemble": "harness.learners.ensemble",
    "random": "harness.learners.random_dags",
    "exact": "harness.learners.exact_sampler",
}


def registry() -> dict[str, str]:
    """Built-in learners plus those named in ``HARNESS_LEARNERS``."""
    extra = {}
    for item in filter(None, os.environ.get("HARNESS_LEARNERS", "").split(",")):
        name, _, module = item.partition("=")
        extra[name.strip()] = module.strip()
    return REGISTRY | extra


def learner_module(name: str) -> ModuleType:
    """The module implementing learner ``name`` (KeyError if none is registered)."""
    return importlib.import_module(registry()[name])


def settings_class(name: str):
    return learner_module(name).Settings
