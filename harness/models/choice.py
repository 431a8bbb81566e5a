"""Which model and graph prior the learners use: a study's ``inference.model`` and
``inference.graph_prior`` where it gives them, else the data's own (``data.model``, ``data.graph``).

A *marginal* model (``{type: bge}``, or ``{type: linear_gaussian, marginal: true}``) has the learners
infer graphs alone under its closed-form marginal likelihood (``harness.models.scores.marginal_score``):
no Θ, and the held-out metrics are marginal likelihoods. Plain dicts in, plain dicts out (a case's
config), so that learners, metrics and the exact posterior read one answer.
"""

from __future__ import annotations


def learners_model(config: dict) -> dict:
    """The learners' model section (absent parameters of a marginal linear Gaussian model: the data's)."""
    model = (config.get("inference") or {}).get("model")
    if model is None:
        return config["data"]["model"]
    if model["type"] == "linear_gaussian":
        data_model = config["data"]["model"] if config["data"]["model"]["type"] == "linear_gaussian" else {}
        defaults = {"obs_noise": 0.1, "mean_edge": 0.0, "sig_edge": 1.0, **data_model}
        return {k: (defaults[k] if v is None and k in defaults else v) for k, v in model.items()}
    return dict(model)


def is_marginal(model: dict) -> bool:
    """Whether the learners infer graphs alone under this model's closed-form marginal likelihood."""
    return model["type"] == "bge" or bool(model.get("marginal"))


def learners_graph_prior(config: dict) -> dict:
    """The learners' graph prior as a ``{type, n_vars, edges_per_node}`` section: the data's graph
    type, or ``inference.graph_prior`` over it (``uniform``: every DAG alike). A fixed network
    (``data.graph.type: fixed``) has no prior of its own: ``inference.graph_prior`` is required there
    (the study loader says so), with the density ``edges_per_node`` of the section, by default the
    network's own edges per node (at least 1 for SF)."""
    data_graph = config["data"]["graph"]
    chosen = (config.get("inference") or {}).get("graph_prior") or data_graph["type"]
    if data_graph["type"] != "fixed":
        return {"type": chosen, "n_vars": data_graph["n_vars"], "edges_per_node": data_graph["edges_per_node"]}
    d = len(data_graph["adjacency"])
    density = data_graph.get("edges_per_node")
    if density is None:
        density = sum(map(sum, data_graph["adjacency"])) / d
        density = float(max(1, round(density))) if chosen == "sf" else density
    return {"type": chosen, "n_vars": d, "edges_per_node": density}
