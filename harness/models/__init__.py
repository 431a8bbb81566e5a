"""What learners and metrics share: the ``Posterior`` type, likelihoods, closed-form local scores,
graph priors and graph utilities."""
