"""Ways a run stops early, each with its own exception: SIGTERM (a scheduler, ``timeout``, ``kill``) is handled
like Ctrl-C, and a run whose updates keep coming out non-finite stops with a message that says where to look."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread like Ctrl-C's KeyboardInterrupt, so the same handlers save."""

    signal_number = signal.SIGTERM


class NonFiniteTraining(RuntimeError):
    """Too many non-finite updates in a row; the message names what was non-finite and the settings to check."""


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises Terminated in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
