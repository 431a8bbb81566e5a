"""JAX settings applied once per process before the first computation.

The persistent compilation cache is on by default, in ``.jax_cache/`` under the working
directory: a later session, or another worker, loads a compiled step loop instead of compiling it.
``HARNESS_JAX_CACHE`` names another directory, or ``off`` to switch it off (pytest:
``--jax-cache DIR|off``). Results are the same with and without it (a test checks).
"""

from __future__ import annotations

import os
from pathlib import Path

_DONE = False


def cache_dir() -> Path | None:
    value = os.environ.get("HARNESS_JAX_CACHE", ".jax_cache")
    if value.strip().lower() in ("", "off", "0", "false", "none"):
        return None
    return Path(value).resolve()


def configure_jax() -> None:
    global _DONE
    if _DONE:
        return
    import jax

    directory = cache_dir()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _DONE = True
