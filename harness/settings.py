"""Validated settings shared by the config loader and the learners.

Kept free of JAX so that loading and validating studies (pytest collection) stays fast.
Defaults follow dibs-lib 1.3.3's ``JointDiBS`` where a setting exists there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class Strict(BaseModel):
    """Base: unknown keys are errors, values are checked, nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InferenceSettings(Strict):
    """DiBS settings shared by all DiBS learners (a learner's own keys override them)."""

    steps: int = Field(1000, ge=0)
    n_dim: PositiveInt | None = Field(None, description="latent dimension k of Z; default d")
    optimizer: Literal["rmsprop", "gd"] = "rmsprop"
    stepsize: PositiveFloat = 0.005
    alpha_linear: float = Field(0.05, ge=0)
    beta_linear: float = Field(1.0, ge=0)
    tau: PositiveFloat = 1.0
    n_grad_mc_samples: PositiveInt = 128
    n_acyclicity_mc_samples: PositiveInt = 32
    grad_estimator_z: Literal["reparam", "score"] = "reparam"
    score_function_baseline: float = Field(0.0, ge=0, le=1)
    latent_prior_std: PositiveFloat | None = None
    likelihood_impl: Literal["fused", "dibs"] = Field(
        "fused", description="fused: harness.likelihoods (same function, faster); dibs: dibs-lib's own classes"
    )
    eval_every: PositiveInt | None = Field(
        None, description="log eshd/auroc every K steps as MLflow metric history (off by default)"
    )


class StudyInference(InferenceSettings):
    """A study's ``inference`` section: the shared DiBS settings, and the study-wide ``dtype``, which
    every learner of the study takes (not a learner's key: a learner section naming it is refused)."""

    dtype: Literal["float32", "float64"] = Field(
        "float32", description="precision of the data (the same draws, cast), the learners and the metrics; "
        "the DiBS paper's code runs in float64"
    )
