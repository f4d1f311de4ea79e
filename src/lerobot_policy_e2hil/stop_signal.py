"""A stop signal made of two events, for LeRobot loops that only know one shutdown event."""

from __future__ import annotations

import time
from typing import Any

_POLL_S = 0.1


class EitherEvent:
    """Looks like the ``Event`` LeRobot's loops poll; set when either of two events is set.

    LeRobot's stream loops stop only on the process-wide shutdown event. Passing them an
    ``EitherEvent(shutdown, local)`` stops one stream (a dead peer, a failed connection) while the
    rest of the process goes on.

    Args:
        shutdown: The process-wide shutdown event (any object with ``is_set``).
        local: The event that ends only this stream.
    """

    def __init__(self, shutdown: Any, local: Any):
        self.shutdown = shutdown
        self.local = local

    def is_set(self) -> bool:
        return self.shutdown.is_set() or self.local.is_set()

    def set(self) -> None:
        self.local.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until either event is set or ``timeout`` seconds have passed; returns ``is_set()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if remaining <= 0:
                break
            self.local.wait(remaining)
        return self.is_set()
