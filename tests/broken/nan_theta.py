"""A learner whose second particle's parameters are NaN."""

import numpy as np

from harness.learners import random_dags
from harness.learners.random_dags import Settings  # noqa: F401


def fit(dataset, config, settings, key):
    post = random_dags.fit(dataset, config, settings, key)
    post.theta = np.array(post.theta, copy=True)
    post.theta[1] = np.nan
    return post
