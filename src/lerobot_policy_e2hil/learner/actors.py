"""Several actors on one learner, on LeRobot's own gRPC transport.

LeRobot 0.6.1 serves one actor: its learner puts each new set of weights once in one queue
that every ``StreamParameters`` call reads, so with two actors each set reaches only one of
them; and nothing tells the learner which actor sent what. Here:

* every actor names itself in the metadata of every call (:mod:`..wire.actor_id`); the learner's
  server reads it and tags each message it queues with it (:func:`tag`), and the learner's
  decoding hooks take the tag off (:func:`untag`), so transitions, episodes and env steps are
  counted per actor;
* :class:`ParameterFanout` gives each parameter stream the newest weights it has not sent yet:
  every actor receives every version it is connected for, a joining actor gets the newest at once.
"""

from __future__ import annotations

import threading
import time
from queue import Empty
from typing import Any

from ..wire.actor_id import UNKNOWN_ACTOR

_TAG = b"E2HIL-ACTOR "
POLL_S = 0.02


def tag(actor_id: str, data: bytes) -> bytes:
    """``data`` prefixed with the id of the actor that sent it (added by the learner's server)."""
    return _TAG + actor_id.encode() + b"\n" + data


def untag(data: bytes) -> tuple[str, bytes]:
    """The actor id and the message of :func:`tag`'s output; untagged data: :data:`UNKNOWN_ACTOR`."""
    if isinstance(data, bytes | bytearray) and data.startswith(_TAG):
        name, _, rest = bytes(data[len(_TAG) :]).partition(b"\n")
        return name.decode(errors="replace"), rest
    return UNKNOWN_ACTOR, data


class TaggingQueue:
    """One call's view of a server queue: every message put is tagged with the caller's id."""

    def __init__(self, queue: Any, actor_id: str):
        self._queue = queue
        self._actor_id = actor_id

    def put(self, data: bytes, *args: Any, **kwargs: Any) -> None:
        self._queue.put(tag(self._actor_id, data), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class ParameterFanout:
    """The newest weights the learner queued, numbered, for every parameter stream.

    Args:
        queue: The learner's parameters queue (LeRobot puts each new set of weights in it).
    """

    def __init__(self, queue: Any):
        self._queue = queue
        self._lock = threading.Lock()
        self.version = 0
        self.latest: bytes | None = None

    def newest(self) -> tuple[int, bytes | None]:
        """Take everything queued (keeping the last) and return ``(version, weights)``."""
        with self._lock:
            while True:
                try:
                    item = self._queue.get_nowait()
                except (Empty, OSError, ValueError):
                    break
                self.latest, self.version = item, self.version + 1
            return self.version, self.latest

    def stream_view(self) -> StreamView:
        """A queue-like view for one ``StreamParameters`` call."""
        return StreamView(self)


class StreamView:
    """What one parameter stream reads instead of the shared queue: each version once, newest first.

    It answers the calls LeRobot's ``get_last_item_from_queue`` makes (``get``, ``qsize``,
    ``get_nowait``).
    """

    def __init__(self, fanout: ParameterFanout):
        self._fanout = fanout
        self.sent = 0

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        while True:
            version, latest = self._fanout.newest()
            if version > self.sent and latest is not None:
                self.sent = version
                return latest
            remaining = deadline - time.monotonic()
            if not block or remaining <= 0:
                raise Empty
            time.sleep(min(POLL_S, remaining))

    def get_nowait(self) -> bytes:
        return self.get(block=False)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True
