"""A learner whose second particle's parameters are NaN."""

import numpy as np

from harness.learners import random as random_learner
from harness.learners.random import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    post = random_learner.fit(dataset, config, settings, key, monitor)
    post.theta = np.array(post.theta, copy=True)
    post.theta[1] = np.nan
    return post
