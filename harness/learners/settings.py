"""The settings every DiBS learner shares (a study's ``inference`` section, a learner's own keys
over them), validated; the study schema imports them.

Kept free of JAX so that loading and validating studies (pytest collection) stays fast.
Defaults follow dibs-lib 1.3.3's ``JointDiBS`` where a setting exists there.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from harness.data.spec import Strict


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
        "fused", description="fused: harness.models.likelihoods (same function, faster); dibs: dibs-lib's own classes"
    )
    eval_every: PositiveInt | None = Field(
        None, description="log eshd/auroc every K steps as MLflow metric history (off by default)"
    )
    n_grad_batch_size: PositiveInt | None = Field(
        None,
        description="training rows drawn afresh (without replacement) for each likelihood term of each "
        "particle's gradient at each step (the DiBS paper's --joint_dibs_n_grad_batch_size); default all rows",
    )
    n_grad_batch_rescale: bool = Field(
        False,
        description="scale the batch log-likelihood by N / B (an unbiased estimate of the full one); "
        "false: the paper's code, which does not (the likelihood tempered by B / N)",
    )


class BGeModel(Strict):
    """``inference.model: {type: bge}``: the learners infer graphs alone under the BGe score
    (Geiger & Heckerman 2002; Kuipers, Moffa & Heckerman 2014). Defaults: the DiBS paper's
    (larslorch/dibs, branch ``full``, ``dibs/eval/parser.py``: ``--bge_alpha_mu 1.0``,
    ``--bge_alpha_lambd_add 2.0``, i.e. alpha_lambda = d + 2; its targets take mean_obs = 0)."""

    type: Literal["bge"]
    alpha_mu: PositiveFloat = 1.0
    alpha_lambda: float | None = Field(None, description="default d + 2; must be above d + 1")
    mean_obs: float = 0.0


class MarginalLinearGaussian(Strict):
    """``inference.model: {type: linear_gaussian, marginal: true}``: the linear Gaussian model with Θ
    integrated out in closed form; absent parameters are the data's (``data.model``)."""

    type: Literal["linear_gaussian"]
    marginal: Literal[True]
    obs_noise: PositiveFloat | None = None
    mean_edge: float | None = None
    sig_edge: PositiveFloat | None = None


# the learners' model where it is not the data's: graphs alone, under a closed-form marginal likelihood
InferenceModel = Annotated[BGeModel | MarginalLinearGaussian, Field(discriminator="type")]
