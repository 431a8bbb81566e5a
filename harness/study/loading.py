"""Study files: load, validate, expand into cases.

A study is one YAML file (see ``../shared/DESIGN.md`` and docs/studies.md for the keys; the keys
themselves are the models of ``harness.study.schema``). Every problem is reported as a
:class:`StudyFileError` (``harness.study.errors``) naming the file, the key path and what was
expected, before any learner runs. Nothing here imports JAX: this runs at pytest collection.

Decisions where the design is silent:

- ``seeds`` is a list of non-negative integers or ``{start: a, stop: b}`` (``range(a, b)``).
- The sweep may not touch ``name``, ``experiment``, ``marks``, ``seeds``, ``thresholds``,
  ``regression``, ``timeout_s``, ``requires`` or ``sweep`` itself; sweep values appear in case ids in the order the sweep keys are written.
- A case's ``config`` has the shape of a study file with one seed, one learner (its settings
  merged with ``inference`` and completed with defaults) and no sweep: its ``config.yaml``
  artifact can be run again as a study of its own.
- Switches added after the first studies were recorded (``OFF_BY_DEFAULT``) stay out of a case's
  config while they are off, so that adding one leaves every earlier case's config hash (and so
  the committed baselines and ``--reuse``) as it was.
"""

from __future__ import annotations

import copy
import functools
import glob
import hashlib
import itertools
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.data.real import MissingDataset, sachs_files
from harness.data.spec import GraphSpec
from harness.evaluation.registry import COMPARED, METRICS, is_compared
from harness.exact.enumeration import check_supported as exact_posterior_unsupported
from harness.learners import LearnerImportError, learner_module, registry, settings_class
from harness.models.choice import is_marginal, learners_graph_prior, learners_model
from harness.models.scores import marginal_score
from harness.study.errors import StudyFileError, suggest, validate, where_in_sweep
from harness.study.schema import DEFAULT_EXPERIMENT, StudyInference, StudySpec

__all__ = [
    "Case",
    "StudyFileError",
    "StudyWarning",
    "DEFAULT_EXPERIMENT",
    "load_study",
    "load_cases",
    "parse_overrides",
    "config_hash",
    "id_part",
    "resolve_study_paths",
]

ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_CASES = 100_000  # in one study file (the paper studies have 300 at most)
UNSWEEPABLE = ("name", "experiment", "marks", "seeds", "thresholds", "regression", "sweep", "timeout_s", "requires")
# keys that cannot change a case's numbers: left out of its config hash, so that recalibrating a
# bound keeps runs comparable with a baseline (and reusable)
NOT_HASHED = ("thresholds", "regression", "timeout_s", "marks", "requires")
# key path: value at which the key is left out of a case's config (module docstring)
OFF_BY_DEFAULT = {
    ("data", "exact_posterior"): False,
    ("data", "split_seed"): None,
    ("data", "model", "weights"): None,
    ("inference", "dtype"): "float32",
    ("inference", "model"): None,
    ("inference", "graph_prior"): None,
    ("inference", "n_grad_batch_size"): None,
    ("inference", "n_grad_batch_rescale"): False,
}
# a learner's settings: value at which a key is left out of its section of the case config (as above)
SETTINGS_OFF_BY_DEFAULT = {"n_grad_batch_size": None, "n_grad_batch_rescale": False}
# inference keys that apply to the whole case, whichever the learner (not DiBS settings a learner takes)
STUDY_WIDE_INFERENCE = ("dtype", "model", "graph_prior")


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One (study, sweep point, seed, learner): everything needed to run it, in plain data."""

    id: str
    study: str
    path: str
    learner: str
    seed: int
    experiment: str
    marks: tuple[str, ...]
    config: dict = field(repr=False)
    sweep_point: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # tags for the case's run (not part of its config)

    @property
    def thresholds(self) -> dict[str, dict[str, float]]:
        return self.config.get("thresholds", {}).get(self.learner, {})

    @property
    def settings(self) -> dict:
        return self.config["learners"][self.learner]

    @property
    def requires(self) -> tuple[str, ...]:
        return tuple(self.config.get("requires", ()))

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def comparison_hash(self) -> str:
        """What the learners of one study config share: its hash without the learner's own settings
        and the seed. Cases are paired only within it (``harness.analysis.compare``), so a shortened
        ``--override`` session is never mixed with a full one."""
        return config_hash({k: v for k, v in self.config.items() if k not in ("learners", "seeds")})


def config_hash(config: dict) -> str:
    """Stable over runs, processes and machines: sha256 of the canonical JSON, 16 hex digits, of
    everything that can change the case's numbers (not ``NOT_HASHED``)."""
    hashed = {k: v for k, v in config.items() if k not in NOT_HASHED}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read the file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise StudyFileError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); expected a YAML file in UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise StudyFileError(f"{path}: broken YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise StudyFileError(f"{path}: expected a mapping of study keys at the top level, got {got}")
    return raw


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> list[Case]:
    """Read, validate and expand one study file into its cases (sorted as written).

    ``overrides`` maps dotted keys to values set before validation (e.g. ``{"inference.steps":
    10}`` for a shortened run); they change the cases' configs, and so their config hashes.
    """
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    if overrides:
        raw = _apply_point(raw, overrides, path, keep_sweep=True, what="override")
    spec = validate(StudySpec, raw, path)
    _check_size(spec, path)
    _check_thresholds(spec, path)
    _check_regression(spec, path)
    _check_dataset_installed(spec, path)
    cases, warned = [], set()
    for point in _sweep_points(spec, path):
        point_raw = _apply_point(raw, point, path)
        point_spec = validate(StudySpec, point_raw, path, point)
        _check_fixed_network(point_spec, path, point)
        _check_exact_posterior(point_spec, path, point)
        learner_settings = _learner_settings(point_spec, path, point)
        _check_learners_take_the_data(point_spec, path, point)
        _check_grad_batches(point_spec, path, point, learner_settings)
        notes = {}
        mismatch = budget_mismatch(learner_settings)
        if mismatch:
            notes["budget_mismatch"] = mismatch
            if mismatch not in warned:
                warnings.warn(f"{path}: {mismatch}", StudyWarning, stacklevel=2)
                warned.add(mismatch)
        for seed in spec.seed_list():
            for learner, settings in learner_settings.items():
                cases.append(_make_case(point_spec, path, point, seed, learner, settings, notes))
    return cases


class StudyWarning(UserWarning):
    """A study that is valid but probably not what its author meant."""


def budget_mismatch(learner_settings: dict[str, dict]) -> str | None:
    """Why svgd and ensemble are not compared like for like (different particle budgets), or None."""
    svgd, ensemble = learner_settings.get("svgd"), learner_settings.get("ensemble")
    if svgd is None or ensemble is None or svgd["n_particles"] == ensemble["n_members"]:
        return None
    return (
        f"svgd has n_particles = {svgd['n_particles']} but ensemble has n_members = {ensemble['n_members']}: "
        "the comparison of the two is not like for like"
    )


def load_cases(patterns: list[str] | tuple[str, ...], overrides: dict[str, Any] | None = None) -> list[Case]:
    """Cases of every study file matched by ``patterns`` (paths or globs), in a stable order."""
    paths = resolve_study_paths(patterns)
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in paths:
        for case in load_study(path, overrides):
            if case.id in seen:
                raise StudyFileError(
                    f"{path}: case id '{case.id}' is also produced by {seen[case.id]}; "
                    "give the studies different `name:` keys"
                )
            seen[case.id] = str(path)
            cases.append(case)
    return cases


def resolve_study_paths(patterns) -> list[Path]:
    paths: set[Path] = set()
    for pattern in patterns:
        matches = glob.glob(str(pattern), recursive=True)
        if not matches:
            raise StudyFileError(f"{pattern}: no study file matches this path or glob")
        for match in matches:
            p = Path(match)
            paths.update(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    return sorted(paths, key=lambda p: str(p.resolve()))


def _make_case(
    spec: StudySpec, path: Path, point: dict, seed: int, learner: str, settings: dict, notes: dict | None = None
) -> Case:
    config = spec.model_dump(mode="json", exclude={"sweep", "learners", "thresholds", "seeds"})
    config["seeds"] = [seed]
    config["inference"] = _inference_settings(spec, path, point).model_dump(mode="json")
    config["learners"] = {learner: {k: v for k, v in settings.items() if not _off(k, v)}}
    if learner in spec.thresholds:
        config["thresholds"] = {
            learner: {m: b.model_dump(exclude_none=True) for m, b in spec.thresholds[learner].items()}
        }
    for (*sections, key), off in OFF_BY_DEFAULT.items():
        section = functools.reduce(dict.__getitem__, sections, config)
        if key in section and section[key] == off:
            del section[key]
    case_id = "-".join([spec.name, *map(id_part, point.values()), f"s{seed}", learner])
    return Case(
        id=case_id,
        study=spec.name,
        path=str(path),
        learner=learner,
        seed=seed,
        experiment=spec.experiment,
        marks=tuple(spec.marks),
        config=config,
        sweep_point=dict(point),
        notes=dict(notes or {}),
    )


def _off(key: str, value: Any) -> bool:
    return key in SETTINGS_OFF_BY_DEFAULT and SETTINGS_OFF_BY_DEFAULT[key] == value


def id_part(value: Any) -> str:
    """A sweep value as it appears in case ids: lists and mappings flattened with ``_``, and any
    character outside ``[A-Za-z0-9_.-]`` (which pytest's ``-k`` and file names need) made ``_``."""
    return ID_SAFE.sub("_", _id_value(value))


def _id_value(value: Any) -> str:
    if isinstance(value, list):
        return "_".join(_id_value(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}_{_id_value(v)}" for k, v in value.items())
    return str(value)


def _inference_settings(spec: StudySpec, path: Path, point: dict) -> StudyInference:
    return validate(StudyInference, spec.inference, path, point, prefix=("inference",))


def _learner_settings(spec: StudySpec, path: Path, point: dict) -> dict[str, dict]:
    """Each learner's effective settings: shared ``inference`` keys it knows, then its own keys."""
    inference = _inference_settings(spec, path, point).model_dump()
    out = {}
    for name, own in spec.learners.items():
        known = registry()
        if name not in known:
            raise StudyFileError(
                f"{path}: key 'learners.{name}': unknown learner{suggest(name, known)}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
        try:
            cls = settings_class(name)
        except LearnerImportError as exc:
            raise StudyFileError(f"{path}: key 'learners.{name}': {exc}") from None
        shared = {k: v for k, v in inference.items() if k in cls.model_fields}
        settings = validate(cls, {**shared, **(own or {})}, path, point, prefix=("learners", name))
        out[name] = settings.model_dump(mode="json")
    _check_inference_keys_are_taken(spec, path)
    return out


def _check_inference_keys_are_taken(spec: StudySpec, path: Path) -> None:
    """A shared ``inference`` key that none of the study's learners takes would be dropped
    silently (e.g. ``h_theta``, an svgd kernel setting, in a study without svgd): refuse it."""
    taken = {k for name in spec.learners for k in settings_class(name).model_fields}
    for key in spec.inference:
        if key not in taken and key not in STUDY_WIDE_INFERENCE:
            raise StudyFileError(
                f"{path}: key 'inference.{key}': no learner of this study takes it "
                f"(learners: {', '.join(spec.learners)}); give it to a learner that does, or remove it"
            )


def _learners_view(spec: StudySpec, path: Path, point: dict) -> dict:
    """What the learners see of a study point: its data and the study-wide model choice."""
    inference = _inference_settings(spec, path, point).model_dump(mode="json")
    return {"data": spec.data.model_dump(), "inference": {k: inference[k] for k in ("model", "graph_prior")}}


def _check_fixed_network(spec: StudySpec, path: Path, point: dict) -> None:
    """``data.model.weights`` fit the fixed network they belong to; a fixed network has no graph
    prior of its own: the learners' must be named, and an ER or SF prior's density (the section's
    ``edges_per_node``, or the network's own) must be feasible."""
    where = f"{path}{where_in_sweep(point)}"
    graph, weights = spec.data.graph, getattr(spec.data.model, "weights", None)
    if weights is not None:
        reason = fixed_weights_problem(weights, graph.adjacency if graph and graph.type == "fixed" else None)
        if reason:
            raise StudyFileError(f"{where}: key 'data.model.weights': {reason}")
    if graph is None or graph.type != "fixed":
        return
    view = _learners_view(spec, path, point)
    if view["inference"]["graph_prior"] is None:
        raise StudyFileError(
            f"{where}: key 'inference.graph_prior': required with a fixed network (data.graph.type: fixed), "
            "which has no graph prior of its own; expected one of: er, sf, uniform"
        )
    prior = learners_graph_prior(view)
    if prior["type"] != "uniform":
        try:
            GraphSpec.model_validate(prior)
        except ValidationError as exc:
            reason = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise StudyFileError(
                f"{where}: key 'data.graph.edges_per_node': the learners' {prior['type']} prior at "
                f"edges_per_node = {prior['edges_per_node']} (default: the network's edges per node): {reason}"
            ) from None


def fixed_weights_problem(weights: list[list[float]], adjacency: list[list[int]] | None) -> str | None:
    """Why ``data.model.weights`` do not fit the fixed network ``adjacency`` (None: no fixed network)."""
    if adjacency is None:
        return "weights fix the edge weights of a fixed network: they need data.graph.type: fixed"
    d = len(adjacency)
    if len(weights) != d or any(len(row) != d for row in weights):
        return f"expected the adjacency's shape, {d} x {d}"
    off = [f"{i}->{j}" for i in range(d) for j in range(d) if (weights[i][j] != 0) != bool(adjacency[i][j])]
    if off:
        return (
            "expected nonzero weights exactly on the adjacency's edges (a weight off the graph would be "
            f"ignored, a zero weight on an edge would make it no edge): entries {', '.join(off)} disagree"
        )
    return None


def _check_exact_posterior(spec: StudySpec, path: Path, point: dict) -> None:
    if spec.data.exact_posterior:
        view = _learners_view(spec, path, point)
        reason = exact_posterior_unsupported(view["data"], learners_model(view))
        if reason:
            raise StudyFileError(
                f"{path}{where_in_sweep(point)}: key 'data.exact_posterior': the exact posterior is not "
                f"available here: {reason}"
            )


def _check_learners_take_the_data(spec: StudySpec, path: Path, point: dict) -> None:
    """A learner module may refuse a study's data (``check_data(data) -> reason or None``: e.g.
    ``exact`` without ``data.exact_posterior``) and the learners' model (``check_model(model) ->
    reason or None``: a model it does not support). A learner without ``check_model`` takes the
    data's own models and is refused under a marginal one (``inference.model``)."""
    view = _learners_view(spec, path, point)
    model = learners_model(view)
    where = f"{path}{where_in_sweep(point)}"
    if is_marginal(model):
        try:
            marginal_score(model, view["data"]["graph"]["n_vars"])
        except ValueError as exc:
            raise StudyFileError(f"{where}: key 'inference.model': {exc}") from None
    for name in spec.learners:
        module = learner_module(name)
        check = getattr(module, "check_data", None)
        reason = check(view["data"]) if check else None
        if reason:
            raise StudyFileError(f"{where}: key 'learners.{name}': {reason}")
        check = getattr(module, "check_model", None)
        if check is not None:
            reason = check(model)
        elif is_marginal(model):
            reason = "it has no marginal mode (no check_model that accepts a marginal model)"
        if reason:
            raise StudyFileError(
                f"{where}: key 'learners.{name}': under the learners' model {model['type']!r}"
                f"{' (marginal)' if is_marginal(model) else ''}: {reason}"
            )


def _check_grad_batches(spec: StudySpec, path: Path, point: dict, learner_settings: dict[str, dict]) -> None:
    """A gradient batch (``n_grad_batch_size``) holds at most the training rows, and needs a
    likelihood that is a sum over rows (a marginal likelihood is not)."""
    rows = spec.data.n_observations
    marginal = is_marginal(learners_model(_learners_view(spec, path, point)))
    for name, settings in learner_settings.items():
        batch = settings.get("n_grad_batch_size")
        if batch is None:
            continue
        key = (
            f"learners.{name}.n_grad_batch_size"
            if "n_grad_batch_size" in (spec.learners[name] or {})
            else ("inference.n_grad_batch_size")
        )
        if batch > rows:
            raise StudyFileError(
                f"{path}{where_in_sweep(point)}: key '{key}': {batch} rows per gradient batch, but the learners "
                f"have {rows} training rows (data.n_observations); expected 1 to {rows}"
            )
        if marginal:
            raise StudyFileError(
                f"{path}{where_in_sweep(point)}: key '{key}': gradient batches need a likelihood that sums over "
                "rows; the learners' model (inference.model) is a marginal likelihood, which does not"
            )


def _check_thresholds(spec: StudySpec, path: Path) -> None:
    for learner, bounds in spec.thresholds.items():
        if learner not in spec.learners:
            raise StudyFileError(
                f"{path}: key 'thresholds.{learner}': no learner '{learner}' in `learners:`"
                f"{suggest(learner, spec.learners)}; expected one of: {', '.join(spec.learners)}"
            )
        for metric in bounds:
            if metric not in METRICS:
                raise StudyFileError(
                    f"{path}: key 'thresholds.{learner}.{metric}': unknown metric"
                    f"{suggest(metric, METRICS)}; expected one of: {', '.join(METRICS)}"
                )


def _check_regression(spec: StudySpec, path: Path) -> None:
    for metric in spec.regression:
        if not is_compared(metric):
            raise StudyFileError(
                f"{path}: key 'regression.{metric}': not a metric the baseline gate compares"
                f"{suggest(metric, COMPARED)}; expected one of: {', '.join(COMPARED)} (or <metric>_mixture)"
            )


def _check_dataset_installed(spec: StudySpec, path: Path) -> None:
    if spec.data.dataset == "sachs":
        try:
            sachs_files()
        except MissingDataset as exc:
            raise StudyFileError(f"{path}: key 'data.dataset': {exc}") from None


def _check_size(spec: StudySpec, path: Path) -> None:
    """Refuse a study of more than MAX_CASES cases before expanding it (a typo in a seed range or a
    sweep must not hang collection or exhaust memory)."""
    points = math.prod(len(v) for v in spec.sweep.values())
    n = points * spec.n_seeds() * len(spec.learners)
    if n > MAX_CASES:
        raise StudyFileError(
            f"{path}: keys 'seeds', 'sweep' and 'learners': {points} sweep point(s) x {spec.n_seeds()} seed(s) x "
            f"{len(spec.learners)} learner(s) = {n} cases; expected at most {MAX_CASES} cases in one study file"
        )


def _sweep_points(spec: StudySpec, path: Path) -> list[dict]:
    for key, values in spec.sweep.items():
        if not values:
            raise StudyFileError(f"{path}: key 'sweep.{key}': expected a non-empty list of values")
        if key.split(".")[0] in UNSWEEPABLE:
            raise StudyFileError(
                f"{path}: key 'sweep.{key}': '{key.split('.')[0]}' cannot be swept; "
                "expected a dotted key under data, inference or learners"
            )
    keys = list(spec.sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*spec.sweep.values())]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["inference.steps=10", "seeds=[0]"]`` -> ``{"inference.steps": 10, "seeds": [0]}`` (values are YAML)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StudyFileError(f"--override {item!r}: expected KEY=VALUE with a dotted KEY, e.g. inference.steps=10")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise StudyFileError(f"--override {item!r}: the value is not valid YAML: {exc}") from None
    return out


def _apply_point(raw: dict, point: dict, path: Path, keep_sweep: bool = False, what: str = "sweep") -> dict:
    out = copy.deepcopy(raw)
    if not keep_sweep:
        out.pop("sweep", None)
    for dotted, value in point.items():
        node = out
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise StudyFileError(
                    f"{path}: key '{what}.{dotted}': '{'.'.join(parts[: i + 1])}' is not a section, "
                    "so it has no sub-key to sweep"
                )
            node = child
        node[parts[-1]] = value
    return out
