"""The benchmark cases' MLflow runs, and the harness's pytest plugin.

Everything else (options, parametrisation, devices, the session controller, the baseline gate)
lives in ``harness/execution/plugin.py``, registered here once.
"""

import pytest

pytest_plugins = ("harness.execution.plugin",)


@pytest.fixture
def case_run(request):
    """The case's child MLflow run: opened before the case, never left RUNNING after it, its record
    sent to the controller for the summary, the CSV and the gate."""
    from harness.execution import plugin

    run = plugin.open_case_run(request)
    try:
        yield run
    finally:
        plugin.close_case_run(request, run)
