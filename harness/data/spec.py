"""The ``data`` section of a study file as pydantic models (what each key may hold, its types,
ranges and defaults), the strict base of every study-file model, and config sections as hashable
data. Nothing here imports JAX: it runs at pytest collection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from harness.data.real import REAL_DATASETS


class Strict(BaseModel):
    """Base: unknown keys are errors, values are checked, nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
        if self.type == "sf" and (
            self.edges_per_node != int(self.edges_per_node) or self.edges_per_node >= self.n_vars
        ):
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


ModelSpec = Annotated[LinearGaussianSpec | NonlinearGaussianSpec, Field(discriminator="type")]


class InterventionSpec(Strict):
    n_sets: NonNegativeInt = 10
    perc_intervened: float = Field(0.1, gt=0, le=1)
    value: float = 0.0
    n_samples: PositiveInt | None = Field(None, description="samples per interventional set; default n_ho_observations")


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
        None, description="real data only: the ground-truth graph (harness.data.real; default consensus)"
    )
    split_seed: NonNegativeInt | None = Field(
        None, description="real data only: the seed of the training / held-out split (default: the case's seed)"
    )
    exact_posterior: bool = Field(
        False,
        description="score every learner against the exact posterior p(G | D) (harness.exact.enumeration): "
        "linear Gaussian synthetic data, n_vars <= 6",
    )

    @model_validator(mode="before")
    @classmethod
    def _real_data_defaults(cls, data):
        # values of the wrong type pass through untouched: the fields' own validation names them
        dataset = data.get("dataset") if isinstance(data, dict) else None
        real = REAL_DATASETS.get(dataset) if isinstance(dataset, str) else None
        if real is None or not isinstance(data.get("graph") or {}, dict):
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
                raise ValueError(
                    "synthetic data need held-out rows (n_ho_observations >= 1); 0 is for real data, "
                    "where every row may be needed for training"
                )
            for key in ("standardize", "truth", "split_seed"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"`{key}` applies to a real `dataset` only: synthetic data are used as "
                        "generated, with their own ground truth (remove the key)"
                    )
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


def freeze_section(section: dict) -> tuple:
    """A config section as hashable data (a jit static argument, an lru_cache key)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(section.items()))


def thaw_section(frozen: tuple) -> dict:
    """The inverse of :func:`freeze_section`."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in frozen}
