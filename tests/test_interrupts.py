"""The stop handler (harness.execution.interrupts), called directly."""

from __future__ import annotations

import signal

import pytest

from harness.execution import interrupts


def test_a_second_signal_while_the_first_is_being_handled_does_not_cut_it_short(monkeypatch):
    """A SIGINT that arrives while the KeyboardInterrupt of a SIGTERM is being handled (the case's
    run being recorded KILLED) returns instead of raising again; outside such handling it raises,
    and the reason stays the first deliberate stop's."""
    monkeypatch.setattr(interrupts, "_received", [])  # this process's record of signals, for this test only
    passed_on = []
    handler = interrupts.stop_handler(also=passed_on.append)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        handler(signal.SIGTERM, None)
    try:
        raise KeyboardInterrupt("SIGTERM")
    except KeyboardInterrupt:
        handler(signal.SIGINT, None)  # returns: the recording of the first stop goes on
    assert passed_on == [signal.SIGTERM, signal.SIGINT]
    assert interrupts.reason() == "SIGTERM"
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        interrupts.raise_if_stopped()
