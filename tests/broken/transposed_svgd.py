"""svgd with a plausible bug: its graphs come back transposed (every edge reversed)."""

from harness.learners import svgd
from harness.learners.svgd import Settings  # noqa: F401


def fit(dataset, config, settings, key, monitor=None):
    post = svgd.fit(dataset, config, settings, key, monitor)
    post.g = post.g.transpose(0, 2, 1).copy()
    post.z = post.z[..., ::-1].copy()
    return post
