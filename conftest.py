"""The benchmark cases' MLflow runs, and the harness's pytest plugin.

Everything else (options, parametrisation, devices, the session controller, the baseline gate)
lives in ``harness/pytest_plugin.py``, registered here once.
"""

import pytest

pytest_plugins = ("harness.pytest_plugin",)


@pytest.fixture
def case_run(request):
    """The case's child MLflow run: opened before the case, never left RUNNING after it, its record
    sent to the controller for the summary, the CSV and the gate."""
    from harness import pytest_plugin

    run = pytest_plugin.open_case_run(request)
    try:
        yield run
    finally:
        pytest_plugin.close_case_run(request, run)
