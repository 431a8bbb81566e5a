"""Study files: load, validate, expand into cases.

A study is one YAML file (see ``../shared/DESIGN.md`` and docs/studies.md for the keys). Every problem
is reported as a :class:`StudyFileError` naming the file, the key path and what was expected,
before any learner runs. Nothing here imports JAX: this runs at pytest collection.

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
import difflib
import glob
import hashlib
import itertools
import json
import re
import warnings
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PlainValidator,
    PositiveInt,
    ValidationError,
    model_validator,
)

from harness.datasets import REAL_DATASETS, MissingDataset, sachs_files
from harness.exact import check_supported as exact_posterior_unsupported
from harness.learners import LearnerImportError, learner_module, registry, settings_class
from harness.metric_names import COMPARED, METRICS, is_compared
from harness.settings import InferenceSettings, Strict

DEFAULT_EXPERIMENT = "dibs_vs_ensembles"
ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
UNSWEEPABLE = ("name", "experiment", "marks", "seeds", "thresholds", "regression", "sweep", "timeout_s", "requires")
# keys that cannot change a case's numbers: left out of its config hash, so that recalibrating a
# bound keeps runs comparable with a baseline (and reusable)
NOT_HASHED = ("thresholds", "regression", "timeout_s", "marks", "requires")
# (section, key): value at which the key is left out of a case's config (module docstring)
OFF_BY_DEFAULT = {("data", "exact_posterior"): False}


class StudyFileError(ValueError):
    """A study file is invalid; the message names the file, the key path and what was expected."""


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class GraphSpec(Strict):
    type: Literal["er", "sf"] = "er"
    n_vars: int | None = Field(None, ge=2, description="required for synthetic data; real data set it")
    edges_per_node: PositiveFloat = 2.0

    @model_validator(mode="after")
    def _feasible_density(self):
        if self.n_vars is None:
            return self
        if self.type == "er" and self.edges_per_node >= (self.n_vars - 1) / 2:
            raise ValueError(
                f"edges_per_node must be below (n_vars - 1) / 2 = {(self.n_vars - 1) / 2} for an ER "
                f"graph on {self.n_vars} nodes (its edge probability would reach 1)"
            )
        if self.type == "sf" and (self.edges_per_node != int(self.edges_per_node) or self.edges_per_node >= self.n_vars):
            raise ValueError("edges_per_node must be a whole number below n_vars for an SF graph")
        return self


class LinearGaussianSpec(Strict):
    type: Literal["linear_gaussian"]
    obs_noise: PositiveFloat = 0.1
    mean_edge: float = 0.0
    sig_edge: PositiveFloat = 1.0
    min_edge: float = Field(0.5, ge=0)


class NonlinearGaussianSpec(Strict):
    type: Literal["nonlinear_gaussian"]
    obs_noise: PositiveFloat = 0.1
    sig_param: PositiveFloat = 1.0
    hidden_layers: list[PositiveInt] = Field(default_factory=lambda: [5], min_length=1)


ModelSpec = Annotated[Union[LinearGaussianSpec, NonlinearGaussianSpec], Field(discriminator="type")]


class InterventionSpec(Strict):
    n_sets: NonNegativeInt = 10
    perc_intervened: float = Field(0.1, gt=0, le=1)
    value: float = 0.0
    n_samples: PositiveInt | None = Field(
        None, description="samples per interventional set; default n_ho_observations"
    )


class DataSpec(Strict):
    """Synthetic data (``graph`` + ``model``) or a real data set (``dataset``; ``model`` is then
    only the likelihood the learners infer with, ``graph`` only the prior's type and density)."""

    dataset: Literal["sachs"] | None = None
    graph: GraphSpec | None = None
    model: ModelSpec
    n_observations: PositiveInt = 100
    n_ho_observations: PositiveInt = 100
    interventions: InterventionSpec = Field(default_factory=InterventionSpec)
    standardize: bool | None = Field(None, description="real data only: standardise each column (default true)")
    truth: Literal["consensus", "cdt"] | None = Field(
        None, description="real data only: the ground-truth graph (harness.datasets; default consensus)"
    )
    exact_posterior: bool = Field(
        False, description="score every learner against the exact posterior p(G | D) (harness.exact): "
        "linear Gaussian synthetic data, n_vars <= 6"
    )

    @model_validator(mode="before")
    @classmethod
    def _real_data_defaults(cls, data):
        real = REAL_DATASETS.get(data.get("dataset")) if isinstance(data, dict) else None
        if real is None:
            return data
        data = dict(data)
        graph = dict(data.get("graph") or {})
        graph.setdefault("type", "er")
        graph.setdefault("edges_per_node", real.default_edges_per_node)
        graph.setdefault("n_vars", real.n_vars)
        data["graph"] = graph
        data.setdefault("interventions", {"n_sets": 0})
        if data.get("standardize") is None:
            data["standardize"] = True
        if data.get("truth") is None:
            data["truth"] = "consensus"
        return data

    @model_validator(mode="after")
    def _consistent(self):
        if self.dataset is None:
            if self.graph is None or self.graph.n_vars is None:
                raise ValueError("synthetic data need `graph` with `n_vars` (or name a real `dataset`)")
            for key in ("standardize", "truth"):
                if getattr(self, key) is not None:
                    raise ValueError(f"`{key}` applies to a real `dataset` only: synthetic data are used as "
                                     "generated, with their own ground truth (remove the key)")
            return self
        real = REAL_DATASETS[self.dataset]
        if self.graph.n_vars != real.n_vars:
            raise ValueError(f"dataset {real.name} has {real.n_vars} variables, not graph.n_vars = {self.graph.n_vars}")
        if self.interventions.n_sets:
            raise ValueError(f"dataset {real.name} has no interventional test sets: set interventions.n_sets to 0")
        if self.n_observations + self.n_ho_observations > real.n_samples:
            raise ValueError(
                f"n_observations + n_ho_observations = {self.n_observations + self.n_ho_observations} "
                f"exceeds the {real.n_samples} samples of dataset {real.name}"
            )
        return self


class SeedRange(Strict):
    start: NonNegativeInt = 0
    stop: PositiveInt

    @model_validator(mode="after")
    def _nonempty(self):
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be greater than start ({self.start})")
        return self


class Bound(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("expected {min: x} and/or {max: x}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


def _min_effect(value: Any) -> float | str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
        return value.strip()
    raise ValueError("expected a number >= 0 or a percentage of the baseline mean such as '5%'")


# a minimum effect for the baseline gate: absolute (0.5) or relative to the baseline mean ("5%")
MinEffect = Annotated[Union[float, str], PlainValidator(_min_effect)]


class StudySpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    experiment: str = Field(DEFAULT_EXPERIMENT, min_length=1)
    marks: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(default_factory=list)
    seeds: list[NonNegativeInt] | SeedRange = Field(default_factory=lambda: [0])
    timeout_s: PositiveFloat | None = Field(None, description="a case running longer fails (default: --case-timeout)")
    requires: list[Literal["gpu"]] = Field(
        default_factory=list, description="where a case may run: `gpu` cases are skipped on a machine without one"
    )
    data: DataSpec
    inference: dict[str, Any] = Field(default_factory=dict)
    learners: dict[str, dict[str, Any] | None] = Field(min_length=1)
    thresholds: dict[str, dict[str, Bound]] = Field(default_factory=dict)
    regression: dict[str, MinEffect] = Field(
        default_factory=dict, description="minimum effect per metric for the baseline gate (harness.baseline)"
    )
    sweep: dict[str, list[Any]] = Field(default_factory=dict)

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.start, self.seeds.stop))
        return list(self.seeds)


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
        and the seed. Cases are paired only within it (``harness.compare``), so a shortened
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
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read the file: {exc}") from None
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
    spec = _validate(StudySpec, raw, path)
    _check_thresholds(spec, path)
    _check_regression(spec, path)
    _check_dataset_installed(spec, path)
    cases, warned = [], set()
    for point in _sweep_points(spec, path):
        point_raw = _apply_point(raw, point, path)
        point_spec = _validate(StudySpec, point_raw, path, point)
        _check_exact_posterior(point_spec, path, point)
        learner_settings = _learner_settings(point_spec, path, point)
        _check_learners_take_the_data(point_spec, path, point)
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
    return (f"svgd has n_particles = {svgd['n_particles']} but ensemble has n_members = {ensemble['n_members']}: "
            "the comparison of the two is not like for like")


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


def _make_case(spec: StudySpec, path: Path, point: dict, seed: int, learner: str, settings: dict,
               notes: dict | None = None) -> Case:
    config = spec.model_dump(mode="json", exclude={"sweep", "learners", "thresholds", "seeds"})
    for (section, key), off in OFF_BY_DEFAULT.items():
        if config[section].get(key) == off:
            del config[section][key]
    config["seeds"] = [seed]
    config["inference"] = _inference_settings(spec, path, point).model_dump(mode="json")
    config["learners"] = {learner: settings}
    if learner in spec.thresholds:
        config["thresholds"] = {
            learner: {m: b.model_dump(exclude_none=True) for m, b in spec.thresholds[learner].items()}
        }
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


def _inference_settings(spec: StudySpec, path: Path, point: dict) -> InferenceSettings:
    return _validate(InferenceSettings, spec.inference, path, point, prefix=("inference",))


def _learner_settings(spec: StudySpec, path: Path, point: dict) -> dict[str, dict]:
    """Each learner's effective settings: shared ``inference`` keys it knows, then its own keys."""
    inference = _inference_settings(spec, path, point).model_dump()
    out = {}
    for name, own in spec.learners.items():
        known = registry()
        if name not in known:
            raise StudyFileError(
                f"{path}: key 'learners.{name}': unknown learner{_suggest(name, known)}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
        try:
            cls = settings_class(name)
        except LearnerImportError as exc:
            raise StudyFileError(f"{path}: key 'learners.{name}': {exc}") from None
        shared = {k: v for k, v in inference.items() if k in cls.model_fields}
        settings = _validate(cls, {**shared, **(own or {})}, path, point, prefix=("learners", name))
        out[name] = settings.model_dump(mode="json")
    _check_inference_keys_are_taken(spec, path)
    return out


def _check_inference_keys_are_taken(spec: StudySpec, path: Path) -> None:
    """A shared ``inference`` key that none of the study's learners takes would be dropped
    silently (e.g. ``h_theta``, an svgd kernel setting, in a study without svgd): refuse it."""
    taken = {k for name in spec.learners for k in settings_class(name).model_fields}
    for key in spec.inference:
        if key not in taken:
            raise StudyFileError(
                f"{path}: key 'inference.{key}': no learner of this study takes it "
                f"(learners: {', '.join(spec.learners)}); give it to a learner that does, or remove it"
            )


def _where(point: dict | None) -> str:
    return f" (sweep point {point})" if point else ""


def _check_exact_posterior(spec: StudySpec, path: Path, point: dict) -> None:
    if spec.data.exact_posterior:
        reason = exact_posterior_unsupported(spec.data.model_dump())
        if reason:
            raise StudyFileError(f"{path}{_where(point)}: key 'data.exact_posterior': the exact posterior is not "
                                 f"available here: {reason}")


def _check_learners_take_the_data(spec: StudySpec, path: Path, point: dict) -> None:
    """A learner module may refuse a study's data (``check_data(data) -> reason or None``): e.g.
    ``exact`` without ``data.exact_posterior``, or a learner on a model it does not support."""
    data = spec.data.model_dump()
    for name in spec.learners:
        check = getattr(learner_module(name), "check_data", None)
        reason = check(data) if check else None
        if reason:
            raise StudyFileError(f"{path}{_where(point)}: key 'learners.{name}': {reason}")


def _check_thresholds(spec: StudySpec, path: Path) -> None:
    for learner, bounds in spec.thresholds.items():
        if learner not in spec.learners:
            raise StudyFileError(
                f"{path}: key 'thresholds.{learner}': no learner '{learner}' in `learners:`"
                f"{_suggest(learner, spec.learners)}; expected one of: {', '.join(spec.learners)}"
            )
        for metric in bounds:
            if metric not in METRICS:
                raise StudyFileError(
                    f"{path}: key 'thresholds.{learner}.{metric}': unknown metric"
                    f"{_suggest(metric, METRICS)}; expected one of: {', '.join(METRICS)}"
                )


def _check_regression(spec: StudySpec, path: Path) -> None:
    for metric in spec.regression:
        if not is_compared(metric):
            raise StudyFileError(
                f"{path}: key 'regression.{metric}': not a metric the baseline gate compares"
                f"{_suggest(metric, COMPARED)}; expected one of: {', '.join(COMPARED)} (or <metric>_mixture)"
            )


def _check_dataset_installed(spec: StudySpec, path: Path) -> None:
    if spec.data.dataset == "sachs":
        try:
            sachs_files()
        except MissingDataset as exc:
            raise StudyFileError(f"{path}: key 'data.dataset': {exc}") from None


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


# ---------------------------------------------------------------------------------------------
# Error messages
# ---------------------------------------------------------------------------------------------


def _validate(cls, data, path: Path, point: dict | None = None, prefix: tuple = ()):
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise StudyFileError(_describe(exc, cls, path, point, prefix)) from None


def _describe(exc: ValidationError, cls, path: Path, point: dict | None, prefix: tuple) -> str:
    lines = []
    for err in exc.errors():
        loc, owner = _display_loc(cls, err["loc"])
        key = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = list(owner.model_fields) if owner else []
            msg = f"unknown key{_suggest(str(loc[-1]), valid)}"
            if valid:
                msg += f"; valid keys here: {', '.join(valid)}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = f"{err['msg']} (got {err['input']!r})"
        lines.append(f"key '{key}': {msg}")
    where = _where(point)
    if len(lines) == 1:
        return f"{path}{where}: {lines[0]}"
    return f"{path}{where}: {len(lines)} problems:\n  " + "\n  ".join(lines)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _display_loc(cls, loc: tuple) -> tuple[tuple, type | None]:
    """Drop pydantic's union-tag entries from ``loc``; return it and the model owning its last key."""
    shown: list = []
    current: Any = cls
    owner = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        current = _strip_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            shown.append(part)
            fld = current.model_fields.get(part)
            current = fld.annotation if fld else None
        elif typing.get_origin(current) in (Union, types.UnionType):
            members = {
                m.model_fields["type"].annotation.__args__[0]: m
                for m in typing.get_args(current)
                if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields
            }
            if part in members:  # a discriminator tag, not a key the user wrote
                current = members[part]
                continue
            shown.append(part)
            current = None
        elif typing.get_origin(current) is dict:
            shown.append(part)
            current = typing.get_args(current)[1]
            owner = None
        else:
            shown.append(part)
            owner = None
            current = None
    return tuple(shown), owner


def _strip_optional(annotation):
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
