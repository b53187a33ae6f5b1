"""Signals during a tracking write wait for it; outside one they interrupt at once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline.run import interrupts


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # let the interpreter run the Python-level handler


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_outside_a_write_interrupts_at_once(sig: int) -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), interrupts.graceful():
        _send(sig)
        reached = True
    assert not reached


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_a_write_waits_for_it_to_finish(sig: int) -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts.graceful():
        with interrupts.deferred():
            _send(sig)
            with interrupts.deferred():  # nested writes finish too
                finished.append("inner")
            finished.append("outer")
        finished.append("after")  # not reached: the interrupt is raised on leaving
    assert finished == ["inner", "outer"]


def test_second_signal_does_not_wait() -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts.graceful(), interrupts.deferred():
        _send(signal.SIGINT)
        _send(signal.SIGINT)
        finished.append("write")
    assert finished == []


def test_previous_handlers_are_restored() -> None:
    before = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    with interrupts.graceful():
        assert all(signal.getsignal(s) is not before[s] for s in interrupts.SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS} == before
