"""``ensemble`` degraded as ``HARNESS_DEGRADE`` says (see ``tests.broken.degraded``)."""

from harness.learners import ensemble
from harness.learners.ensemble import Settings  # noqa: F401
from tests.broken.degraded import degrade

fit = degrade(ensemble.fit, "ensemble")
