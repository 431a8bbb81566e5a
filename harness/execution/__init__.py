"""How cases run: the pytest plugin (``plugin``), ``run_case`` (``run``), the executors (local,
Slurm), device pinning, JAX set-up, stop signals and the monitor a learner reports to."""
