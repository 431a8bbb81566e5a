"""The keys of a study file, as pydantic models: what each section may hold, its types, ranges and
defaults, and the checks that need several keys at once (an ER graph's density, real data's sizes).

Loading a file, expanding its sweep and seeds into cases and the checks that need the learner
registry are ``harness.study.loading``; the error messages are ``harness.study.errors``. Nothing here
imports JAX: it runs at pytest collection.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PlainValidator, PositiveFloat, PositiveInt, field_validator, model_validator

from harness.data.spec import DataSpec, Strict
from harness.learners.settings import InferenceModel, InferenceSettings

DEFAULT_EXPERIMENT = "dibs_vs_ensembles"
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


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
MinEffect = Annotated[float | str, PlainValidator(_min_effect)]


class StudySpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    experiment: str = Field(DEFAULT_EXPERIMENT, min_length=1)
    marks: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(default_factory=list)
    seeds: list[NonNegativeInt] | SeedRange = Field(default_factory=lambda: [0])

    @field_validator("seeds", mode="before")
    @classmethod
    def _some_seed(cls, value):
        if isinstance(value, list) and not value:  # found by scripts/fuzz_studies.py: 0 cases, accepted
            raise ValueError("expected at least one seed, e.g. [0, 1, 2] or {start: 0, stop: 10}")
        return value

    timeout_s: PositiveFloat | None = Field(None, description="a case running longer fails (default: --case-timeout)")
    requires: list[Literal["gpu"]] = Field(
        default_factory=list, description="where a case may run: `gpu` cases are skipped on a machine without one"
    )
    data: DataSpec
    inference: dict[str, Any] = Field(default_factory=dict)
    learners: dict[str, dict[str, Any] | None] = Field(min_length=1)
    thresholds: dict[str, dict[str, Bound]] = Field(default_factory=dict)
    regression: dict[str, MinEffect] = Field(
        default_factory=dict, description="minimum effect per metric for the baseline gate (harness.analysis.baseline)"
    )
    sweep: dict[str, list[Any]] = Field(default_factory=dict)

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.start, self.seeds.stop))
        return list(self.seeds)

    def n_seeds(self) -> int:
        """How many seeds, without listing them (a range may be huge)."""
        return self.seeds.stop - self.seeds.start if isinstance(self.seeds, SeedRange) else len(self.seeds)


class StudyInference(InferenceSettings):
    """A study's ``inference`` section: the shared DiBS settings, and the study-wide ``dtype``, which
    every learner of the study takes (not a learner's key: a learner section naming it is refused)."""

    dtype: Literal["float32", "float64"] = Field(
        "float32",
        description="precision of the data (the same draws, cast), the learners and the metrics; "
        "the DiBS paper's code runs in float64",
    )
    model: InferenceModel | None = Field(
        None, description="the learners' model where it is not the data's (marginal inference: graphs alone)"
    )
    graph_prior: Literal["er", "sf", "uniform"] | None = Field(
        None, description="the learners' graph prior (default: the data's graph type)"
    )
