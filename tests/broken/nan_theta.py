"""A learner whose second particle's parameters are NaN."""

import numpy as np

from harness.learners import random_dags
from harness.learners.random_dags import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    post = random_dags.fit(dataset, config, settings, key, monitor)
    post.theta = np.array(post.theta, copy=True)
    post.theta[1] = np.nan
    return post
