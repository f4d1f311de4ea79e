"""What the learner accepts from the network, decoded without unpickling.

LeRobot 0.6.1 sends the actor's per-episode interaction message with ``pickle`` and the
learner unpickles it (``lerobot.transport.utils.bytes_to_python_object``): anyone who reaches
the learner's port can run code in it. Here the message travels as JSON (:func:`encode_message`
on the actor, :func:`decode_message` on the learner, with a size limit and a schema check), and
:class:`RejectCounter` counts and reports what did not decode, the way bad transitions are
(:mod:`..learner.transitions`).

Transitions and parameters travel as safetensors (:mod:`.tensors`), not LeRobot's
``torch.save``. :func:`capped_chunks` bounds the size of every message a stream may deliver
before it is decoded.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Every field of LeRobot's message that the learner reads as a number; a JSON number here
FINITE_FIELDS = (
    "Interaction step",
    "Episode steps",
    "Episodic reward",
    "Episode intervention",
    "Intervention rate",
)
STEP_FIELDS = ("Interaction step", "Episode steps")
MAX_FIELDS = 64
MAX_TEXT = 256


class BadMessage(ValueError):
    """An interaction message that is not what an actor sends; the message says why."""


def _plain(value: Any) -> Any:
    """A JSON value for ``value``: numpy and torch scalars as Python numbers, non-finite as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def encode_message(message: dict[str, Any]) -> bytes:
    """The JSON bytes of one interaction message (flat: names to numbers, booleans, short text).

    Args:
        message: What LeRobot's actor sends at each episode end, plus fields the hooks add.

    Returns:
        UTF-8 JSON; non-finite numbers become ``null``.
    """
    return json.dumps({str(key): _plain(value) for key, value in message.items()}, allow_nan=False).encode()


def _reject_constant(name: str) -> None:
    raise BadMessage(f"the number {name} is not allowed")


def decode_message(data: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode and check one interaction message received from the network.

    Args:
        data: The bytes as received.
        max_bytes: Larger messages are refused before parsing.

    Returns:
        The message: a flat dict whose values are numbers, booleans, null or short text;
        ``"Interaction step"`` an integer >= 0.

    Raises:
        BadMessage: Too large, not JSON (a pickle, say), or not shaped like an interaction message.
    """
    if not isinstance(data, bytes | bytearray):
        raise BadMessage(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise BadMessage(f"{len(data)} bytes, more than the limit of {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("not UTF-8 JSON (an old actor's pickle?)") from None
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except BadMessage:
        raise
    except json.JSONDecodeError as err:
        raise BadMessage(f"not JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:  # a number of too many digits, nesting too deep
        raise BadMessage(f"not an interaction message ({type(err).__name__})") from None
    if not isinstance(message, dict):
        raise BadMessage(f"a JSON {type(message).__name__}, not an object")
    if len(message) > MAX_FIELDS:
        raise BadMessage(f"{len(message)} fields, more than {MAX_FIELDS}")
    for key, value in message.items():
        _check_field(key, value)
    if "Interaction step" not in message:
        raise BadMessage("no 'Interaction step'")
    return message


def _check_field(key: str, value: Any) -> None:
    if len(key) > MAX_TEXT:
        raise BadMessage(f"a field name of {len(key)} characters")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise BadMessage(f"{key!r} is text of {len(value)} characters, more than {MAX_TEXT}")
    elif value is not None and not isinstance(value, bool | int | float):
        raise BadMessage(f"{key!r} is a {type(value).__name__}, not a number, boolean or text")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadMessage(f"{key!r} is {value}, not a finite number")
    if key in FINITE_FIELDS and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadMessage(f"{key!r} is {value!r}, not a number")
    if key in STEP_FIELDS and (not isinstance(value, int) or value < 0):
        raise BadMessage(f"{key!r} is {value!r}, not an integer >= 0")


class RejectCounter:
    """Counts what the learner skipped or refused, warns at most once per interval with the reasons.

    Args:
        label: Start of the warning (``"Skipped interaction messages that do not decode"``).
        warn_interval_s: At most one warning per this many seconds (the first comes at once).
        side: Who warns (``"LEARNER"``, ``"ACTOR"``), the warning's prefix.
    """

    def __init__(self, label: str, warn_interval_s: float, side: str = "LEARNER"):
        self.label = label
        self.side = side
        self.warn_interval_s = warn_interval_s
        self.rejected = 0
        self._pending: Counter[str] = Counter()
        self._last_warning = -math.inf
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, int], None]] = []

    def reject(self, reason: str) -> None:
        """Count one skipped message and tell the listeners (reason, total so far)."""
        with self._lock:
            self.rejected += 1
            self._pending[reason] += 1
            total = self.rejected
            now = time.monotonic()
            if now - self._last_warning >= self.warn_interval_s:
                reasons = ", ".join(f"{text}: {count}" for text, count in self._pending.most_common())
                logging.warning(f"[{self.side}] {self.label} ({reasons}); {total} so far. Training goes on.")
                self._pending.clear()
                self._last_warning = now
        for listener in self.listeners:
            listener(reason, total)


class MessageTooLarge(Exception):
    """A stream delivered a message larger than its limit."""


def capped_chunks(chunks: Iterable[Any], max_bytes: int, on_excess: Callable[[int], None]) -> Iterator[Any]:
    """LeRobot's chunk stream, ended when one message (BEGIN ... END) grows past ``max_bytes``.

    LeRobot's receiver appends every chunk to one buffer until the END chunk, without a limit.

    Args:
        chunks: The request iterator of a ``SendTransitions``/``SendInteractions`` call.
        max_bytes: The largest message allowed.
        on_excess: Called with the size reached; it should abort the call (it raises).

    Yields:
        The chunks, unchanged, while the message being received is within the limit.
    """
    from lerobot.transport.utils import TransferState

    size = 0
    for chunk in chunks:
        if chunk.transfer_state == TransferState.TRANSFER_BEGIN:
            size = 0
        size += len(chunk.data)
        if size > max_bytes:
            on_excess(size)
            raise MessageTooLarge(f"{size} bytes")
        yield chunk
        if chunk.transfer_state == TransferState.TRANSFER_END:
            size = 0
