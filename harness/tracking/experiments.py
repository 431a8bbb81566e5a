"""An experiment by name: found, or created with its artifacts beside a local store, and marked as
holding training-style runs (for MLflow 3's UI)."""

from __future__ import annotations

import re

from mlflow.tracking import MlflowClient

from harness.tracking import tags as T
from harness.tracking.store import artifact_root, retry_locked


def experiment_id_of(client: MlflowClient, uri: str, name: str) -> str:
    exp = retry_locked(client.get_experiment_by_name, name)
    exp_id = exp.experiment_id if exp else _create_experiment(client, uri, name)
    if not exp or exp.tags.get(T.EXPERIMENT_KIND_TAG) != "custom_model_development":
        # MLflow 3's UI opens GenAI views unless told the experiment holds training-style runs
        retry_locked(client.set_experiment_tag, exp_id, T.EXPERIMENT_KIND_TAG, "custom_model_development")
    return exp_id


def _create_experiment(client: MlflowClient, uri: str, name: str) -> str:
    root = artifact_root(uri)
    location = f"{root}/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}" if root else None
    try:
        return retry_locked(client.create_experiment, name, artifact_location=location)
    except Exception:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another session
        if exp is None:
            raise
        return exp.experiment_id
