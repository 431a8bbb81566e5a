"""The study file: its keys (``schema``), loading and sweeps into cases (``loading``), error
messages (``errors``) and the plan a session prints (``plan``). Imports no JAX."""
