"""A session's stop signals, kept on record so that no library can lose them.

The benchmark plugin handles SIGTERM (what ``timeout``, ``kill``, a cancelled CI job or a batch
system send) as Ctrl-C: its handler raises ``KeyboardInterrupt("SIGTERM")`` in the main thread,
wherever that thread happens to be. Two things can then go wrong:

- The interrupt can be swallowed. JAX wraps calls on a freshly compiled executable in bare
  ``except:`` (``jax/_src/interpreters/pxla.py``), and Python runs a signal's handler at the first
  bytecode after a long C call returns: a SIGTERM that lands during an XLA compile can vanish there,
  and the case runs on. So the handler also records the signal, and the case's check points
  (:meth:`harness.execution.monitor.Monitor.check`: after the data, between step chunks, after the learner)
  raise it again.
- A later, plainer interrupt can end the case instead: the SIGINT that execnet sends an xdist
  worker still busy 5 s after the controller stopped. CPython runs pending handlers in
  signal-number order, so that SIGINT also wins when both wait out one long C call together. So a
  case's run takes its reason from the record (:func:`reason`), not from the exception that ended
  it; and a stop signal that comes while a KeyboardInterrupt is already being handled only adds to
  the record, instead of raising again in the middle of writing the case's run.

The first is the likely story of a CI run in which a SIGTERM sent while a worker's case was
starting (compiling its data program) ended that case as "KeyboardInterrupt: " 5 s later.
``tests/test_plugin.py``'s SIGTERM tests reproduce both, with learners from ``tests/broken``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_received: list[str] = []  # names of the stop signals this process has received, in order


def stop_handler(also: Callable[[int], None] | None = None) -> Callable:
    """A signal handler that records the signal, calls ``also(signum)`` if given, then raises
    ``KeyboardInterrupt(reason())`` unless a KeyboardInterrupt is being handled already."""

    def handler(signum, frame):
        _received.append(signal.Signals(signum).name)
        if also is not None:
            also(signum)
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return  # already stopping: let the handling of the first one finish
        raise KeyboardInterrupt(reason())

    return handler


def reason() -> str:
    """Why this process is stopping: "SIGTERM" once one came (the deliberate stop, whatever
    followed it), else the first signal received, else "" (a plain Ctrl-C)."""
    if "SIGTERM" in _received:
        return "SIGTERM"
    return _received[0] if _received else ""


def raise_if_stopped() -> None:
    """Raise ``KeyboardInterrupt`` again if a stop signal was received (and, since the process is
    still here, swallowed somewhere)."""
    if _received:
        raise KeyboardInterrupt(reason())


def describe(exc: BaseException) -> str:
    """``"<type>: <message>"`` for a case's ``failure_reason``; an interrupt says which signal."""
    message = (reason() or str(exc)) if isinstance(exc, KeyboardInterrupt) else str(exc)
    return f"{type(exc).__name__}: {message}"
