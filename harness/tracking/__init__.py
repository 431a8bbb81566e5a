"""Where results go: the MLflow store, sessions (parent runs), case runs, records, heartbeats,
provenance, and the tag names and queries (``tags``)."""
