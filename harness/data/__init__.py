"""Ground truth and data: synthetic (``synthetic``), real data sets (``real``), the ``data``
section's keys (``spec``) and the :class:`~harness.data.dataset.Dataset` type.

``make_dataset(data_config, seed)`` is the entry point; importing this package imports no JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.data.dataset import Dataset


def make_dataset(data: dict, seed: int) -> Dataset:
    """Ground truth, training data, held-out data and interventional sets for ``seed``."""
    from harness.data import real, synthetic
    from harness.data.spec import DataSpec

    spec = DataSpec.model_validate(data).model_dump()
    if spec["dataset"] is not None:
        return real.make_real_dataset(spec, seed)
    if spec["model"]["type"] == "linear_gaussian" and spec["graph"]["type"] != "fixed":
        return synthetic.make_linear_gaussian_dataset(spec, seed)
    return synthetic.dibs_lib_dataset(spec, seed)
