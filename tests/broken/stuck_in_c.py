"""A learner stuck in one long C call when its xdist session is stopped, as a case is during an XLA
compile or a long jitted chunk: Python runs signal handlers only between bytecodes, so the stop
signals that arrive meanwhile wait, and run together when the call returns.

Here the call is one blocking ``recv`` on the signal wakeup socket, with SIGINT and SIGTERM blocked
in this (the main) thread so that they land on another thread and do not cut the call short. It
returns once the worker has received two stop signals: the controller's SIGTERM and the SIGINT that
execnet sends a worker still busy 5 s after the controller tore the session down. CPython then runs
the pending handlers in signal-number order, SIGINT first. (Should the second never come, execnet
ends the worker 10 s later and the case fails as "ended before the case did".)
"""

import signal
import socket

from harness.learners.random import Settings  # noqa: F401
from tests.broken import tell_the_test_it_is_ready

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def fit(dataset, config, settings, key, monitor=None):
    read_end, write_end = socket.socketpair()
    write_end.setblocking(False)
    previous_fd = signal.set_wakeup_fd(write_end.fileno())
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        tell_the_test_it_is_ready()
        read_end.recv(2, socket.MSG_WAITALL)  # one byte per signal
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    raise AssertionError("should have been interrupted")
