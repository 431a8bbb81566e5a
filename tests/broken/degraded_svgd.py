"""``svgd`` degraded as ``HARNESS_DEGRADE`` says (see ``tests.broken.degraded``)."""

from harness.learners import svgd
from harness.learners.svgd import Settings  # noqa: F401
from tests.broken.degraded import degrade

fit = degrade(svgd.fit, "svgd")
