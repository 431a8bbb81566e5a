"""JAX settings applied once per process before the first computation.

The persistent compilation cache is on by default, in ``.jax_cache/`` under the working
directory: a later session, or another worker, loads a compiled step loop instead of compiling it.
``HARNESS_JAX_CACHE`` names another directory, or ``off`` to switch it off (pytest:
``--jax-cache DIR|off``). Results are the same with and without it (a test checks).

Every compiled program is cached, however quick its compile (JAX's default skips those under 1 s):
dibs-lib's data samplers run op by op, and compiling their ~90 small programs cost each new
process ~4.5 s in its first case; loaded from the cache, ~0 s (first data set 7.1 s -> 2.7 s here).

On a CPU, JAX lowers its threefry random-bit generator as a rolled loop (5 iterations of 4 rounds),
to keep compile times down; on small problems that loop was the largest piece of a DiBS step.
``unroll_threefry_on_cpu`` selects the unrolled lowering JAX uses on every other platform: the same
bits (a test compares them with JAX's own), a 1.9x faster d = 5 svgd step and a shorter compile
(docs/performance.md).
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
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    unroll_threefry_on_cpu()
    _DONE = True


def unroll_threefry_on_cpu() -> None:
    """Lower ``threefry2x32`` on the CPU as JAX lowers it elsewhere (unrolled rounds). Uses JAX's
    internal registry (jax is pinned); if that moves, the rolled default stays, with a warning."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32

        rule = threefry2x32._threefry2x32_lowering_rule
        mlir.register_lowering(threefry2x32.threefry2x32_p, rule, platform="cpu", inline=False)
    except (ImportError, AttributeError) as exc:  # pragma: no cover - a JAX without these internals
        import warnings

        warnings.warn(f"threefry stays rolled on the CPU ({exc}); results are the same, only slower", stacklevel=2)
