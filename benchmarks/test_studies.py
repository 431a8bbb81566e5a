"""Every (study, sweep point, seed, learner) of the collected study files is one case here.

Cases are parametrised by the harness's pytest plugin (``harness/execution/plugin.py``, registered in
the root ``conftest.py``) from ``configs/*.yaml`` (or ``--configs``); the root conftest's
``case_run`` fixture wraps each in its MLflow child run.
"""

from harness import run_case


def test_case(case, case_run):
    case_run.execute(run_case)
    assert not case_run.misses, "\n".join(case_run.misses)
