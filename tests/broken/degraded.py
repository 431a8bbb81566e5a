"""A built-in learner degraded behind the study's back, for the baseline gate's tests and
``scripts/gate_trials.py``: ``HARNESS_DEGRADE`` names one setting and a factor, e.g.
``steps*0.25`` (a quarter of the steps), ``n_particles*0.3`` / ``n_members*0.3`` (a third of the
particles), ``h_latent*100`` (an SVGD kernel 100 times too wide: almost no repulsion, particles
dragged along by each other's gradients); several, comma-separated; ``svgd:steps*0.1`` degrades
only the named learner. Registered under the real learner's name
(``svgd=tests.broken.degraded_svgd``), so case ids and config hashes stay the real ones; a learner
that lacks the named setting runs unchanged."""

from __future__ import annotations

import os


def degrade(real_fit, learner: str):
    def fit(dataset, config, settings, key, monitor=None):
        for item in filter(None, os.environ.get("HARNESS_DEGRADE", "").split(",")):
            target, _, item = item.rpartition(":")
            name, _, factor = item.partition("*")
            if target in ("", learner) and name in type(settings).model_fields:
                value = getattr(settings, name)
                scaled = max(1, round(value * float(factor))) if isinstance(value, int) else value * float(factor)
                settings = settings.model_copy(update={name: scaled})
        return real_fit(dataset, config, settings, key, monitor)

    return fit
