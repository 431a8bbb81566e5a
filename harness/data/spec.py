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


class FixedGraphSpec(Strict):
    """A network given in the study file: ``adjacency[i][j] = 1`` for an edge i -> j (the same for
    every seed; the seeds draw the noise, and the weights unless ``data.model.weights`` fixes them).
    It has no graph prior of its own: the learners' is ``inference.graph_prior``."""

    type: Literal["fixed"]
    adjacency: list[list[Literal[0, 1]]] = Field(min_length=2)
    nodes: list[Annotated[str, Field(min_length=1)]] | None = Field(None, description="default X0, X1, ...")
    n_vars: int | None = Field(None, description="the adjacency's size (set from it)")
    edges_per_node: PositiveFloat | None = Field(
        None, description="density of an er / sf inference.graph_prior (default: the network's edges / nodes)"
    )

    @model_validator(mode="after")
    def _a_dag(self):
        d = len(self.adjacency)
        if any(len(row) != d for row in self.adjacency):
            shape = f"{d} rows of lengths {sorted({len(row) for row in self.adjacency})}"
            raise ValueError(f"adjacency must be a square matrix (d rows of d entries), got {shape}")
        if self.n_vars is not None and self.n_vars != d:
            raise ValueError(f"n_vars = {self.n_vars} but the adjacency has {d} rows (leave n_vars out)")
        if self.nodes is not None and (len(self.nodes) != d or len(set(self.nodes)) != d):
            raise ValueError(f"nodes must be {d} distinct names, one per adjacency row, got {self.nodes}")
        cycle = directed_cycle(self.adjacency)
        if cycle:
            names = self.nodes or [f"X{i}" for i in range(d)]
            raise ValueError(f"adjacency is not acyclic: {' -> '.join(names[i] for i in cycle)}")
        object.__setattr__(self, "n_vars", d)  # frozen model: the derived size, for code reading n_vars
        return self


def directed_cycle(adjacency: list[list[int]]) -> list[int]:
    """A directed cycle of ``adjacency`` as a node list (first node repeated at the end), or []."""
    d = len(adjacency)
    state = [0] * d  # 0 unvisited, 1 on the current path, 2 done
    path: list[int] = []

    def visit(i: int) -> list[int]:
        state[i] = 1
        path.append(i)
        for j in range(d):
            if adjacency[i][j] and state[j] == 1:
                return path[path.index(j) :] + [j]
            if adjacency[i][j] and state[j] == 0:
                found = visit(j)
                if found:
                    return found
        state[i] = 2
        path.pop()
        return []

    for i in range(d):
        if state[i] == 0:
            found = visit(i)
            if found:
                return found
    return []


class LinearGaussianSpec(Strict):
    type: Literal["linear_gaussian"]
    obs_noise: PositiveFloat = 0.1
    mean_edge: float = 0.0
    sig_edge: PositiveFloat = 1.0
    min_edge: float = Field(0.5, ge=0)
    weights: list[list[float]] | None = Field(
        None, description="a fixed network's edge weights, d x d, nonzero exactly on its edges (default: drawn)"
    )


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
    graph: Annotated[GraphSpec | FixedGraphSpec, Field(discriminator="type")] | None = None
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
        if isinstance(data, dict) and isinstance(data.get("graph"), dict) and "type" not in data["graph"]:
            data = {**data, "graph": {**data["graph"], "type": "er"}}  # the default graph type
        dataset = data.get("dataset") if isinstance(data, dict) else None
        real = REAL_DATASETS.get(dataset) if isinstance(dataset, str) else None
        if (
            real is None
            or not isinstance(data.get("graph") or {}, dict)
            or (data.get("graph") or {}).get("type") == "fixed"
        ):
            return data  # (a fixed network on real data is refused after validation)
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
        if self.graph.type == "fixed":
            raise ValueError(f"dataset {real.name} has its own ground truth (`truth`): graph.type cannot be fixed")
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
