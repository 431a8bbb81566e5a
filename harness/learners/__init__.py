"""Learner registry.

A learner is one module that defines

- ``Settings``: a pydantic model of its keys (a subclass of ``InferenceSettings`` if it takes the
  shared DiBS settings under ``inference:``),
- ``fit(dataset, config, settings, key, monitor=None) -> Posterior``, and optionally
- ``check_data(data) -> str | None``: why the learner cannot run on a study's ``data`` section
  (refused at collection with that reason), or None.

Adding a learner to the harness is that module plus one entry in ``REGISTRY``. Modules must not
import JAX at import time: the registry is read while studies are validated at collection.

Learners that live outside this package:

- an installed package declares them as entry points of the group ``dibs_bench.learners``
  (``name = "package.module"`` in its ``[project.entry-points."dibs_bench.learners"]``); being
  installed is enough. Only their names and module paths are read at collection; a module is
  imported when a study names its learner, and one that cannot be imported (a missing optional
  dependency, a typo) is refused for that study only, naming the package and module;
- ``HARNESS_LEARNERS="name=module.path,other=pkg.mod"`` (a user's experiment, the deliberately
  broken learners of the tests). A name given here wins over an entry point of the same name,
  which wins over a built-in one.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

ENTRY_POINT_GROUP = "dibs_bench.learners"

REGISTRY: dict[str, str] = {
    "svgd": "harness.learners.svgd",
    "ensemble": "harness.learners.ensemble",
    "random": "harness.learners.random",
    "exact": "harness.learners.exact",
    "mc3": "harness.learners.mc3",
    "bootstrap_ges": "harness.learners.bootstrap_ges",
    "bootstrap_pc": "harness.learners.bootstrap_pc",
}


class LearnerImportError(ImportError):
    """A registered learner's module cannot be imported or lacks ``Settings`` / ``fit``."""


@functools.lru_cache(maxsize=1)
def entry_point_learners() -> dict[str, tuple[str, str]]:
    """name -> (module, where it comes from) for the entry points of installed packages (read once
    per process: what is installed does not change while a session runs)."""
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist is not None else "an installed package"
        out[ep.name] = (ep.module, f"entry point '{ep.name} = {ep.value}' of package '{package}'")
    return out


def environment_learners() -> dict[str, tuple[str, str]]:
    out = {}
    for item in filter(None, os.environ.get("HARNESS_LEARNERS", "").split(",")):
        name, _, module = item.partition("=")
        out[name.strip()] = (module.strip(), "HARNESS_LEARNERS")
    return out


def sources() -> dict[str, tuple[str, str]]:
    """name -> (module, origin) of every learner: built-in, entry points, HARNESS_LEARNERS."""
    built_in = {name: (module, "built in") for name, module in REGISTRY.items()}
    return built_in | entry_point_learners() | environment_learners()


def registry() -> dict[str, str]:
    """name -> module of every learner (see :func:`sources`)."""
    return {name: module for name, (module, _) in sources().items()}


def learner_module(name: str) -> ModuleType:
    """The module implementing learner ``name`` (KeyError if none is registered;
    :class:`LearnerImportError` if it cannot be imported or is not a learner)."""
    module_path, origin = sources()[name]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise LearnerImportError(
            f"learner '{name}' ({origin}): its module '{module_path}' cannot be imported: "
            f"{type(exc).__name__}: {exc} (a missing optional dependency? install it)"
        ) from exc
    missing = [attr for attr in ("Settings", "fit") if not hasattr(module, attr)]
    if missing:
        raise LearnerImportError(
            f"learner '{name}' ({origin}): module '{module_path}' lacks {' and '.join(missing)}; "
            "a learner module defines Settings (pydantic) and fit(dataset, config, settings, key)"
        )
    return module


def settings_class(name: str):
    return learner_module(name).Settings
