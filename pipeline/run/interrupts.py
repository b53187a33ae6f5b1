"""Ctrl-C and SIGTERM as one clean interrupt that never lands inside a tracking write.

A KeyboardInterrupt raised in the middle of an MLflow SQLite transaction leaves
the store's connection holding its write lock, and the later "mark the run
KILLED" write then fails. So while a short tracking call runs (:func:`deferred`),
a signal is only remembered, and raised as KeyboardInterrupt as soon as the call
returns; a second signal interrupts at once. SIGTERM (schedulers, ``ray job stop``, systemd) takes the same path as
Ctrl-C; Ray's own driver handler would call ``sys.exit`` or abort instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = threading.local()


def _depth() -> int:
    return int(getattr(_state, "depth", 0))


def _handle(signum: int, frame: FrameType | None) -> None:
    if _depth() > 0 and getattr(_state, "pending", None) is None:
        _state.pending = signum  # a second signal does not wait: the user insists
        return
    _state.pending = None
    raise KeyboardInterrupt(f"signal {signum}")


def claim() -> None:
    """Install the handler for SIGINT and SIGTERM (again after ``ray.init`` replaced it)."""
    with contextlib.suppress(ValueError):  # not the main thread: signals are not ours
        for sig in SIGNALS:
            signal.signal(sig, _handle)


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise KeyboardInterrupt, deferred by :func:`deferred`."""
    try:
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        claim()
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold off an interrupt until this (short) block has finished."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth = _depth() - 1
        pending = getattr(_state, "pending", None)
        if _state.depth == 0 and pending is not None:
            _state.pending = None
            raise KeyboardInterrupt(f"signal {pending}")
