"""The keys of a study file, as pydantic models: what each section may hold, its types, ranges and
defaults, and the checks that need several keys at once (an ER graph's density, real data's sizes).

Loading a file, expanding its sweep and seeds into cases and the checks that need the learner
registry are ``harness.config``; the error messages are ``harness.study_errors``. Nothing here
imports JAX: it runs at pytest collection.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeInt, PlainValidator, PositiveFloat, PositiveInt, model_validator

from harness.datasets import REAL_DATASETS
from harness.settings import Strict

DEFAULT_EXPERIMENT = "dibs_vs_ensembles"
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


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
    n_ho_observations: NonNegativeInt = Field(
        100, description="held-out rows; 0 only for real data (then the metrics that need them are not logged)"
    )
    interventions: InterventionSpec = Field(default_factory=InterventionSpec)
    standardize: bool | None = Field(None, description="real data only: standardise each column (default true)")
    truth: Literal["consensus", "cdt"] | None = Field(
        None, description="real data only: the ground-truth graph (harness.datasets; default consensus)"
    )
    split_seed: NonNegativeInt | None = Field(
        None, description="real data only: the seed of the training / held-out split (default: the case's seed)"
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
            if self.n_ho_observations == 0:
                raise ValueError("synthetic data need held-out rows (n_ho_observations >= 1); 0 is for real data, "
                                 "where every row may be needed for training")
            for key in ("standardize", "truth", "split_seed"):
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
