"""Human-in-the-loop event state shared by the keyboard listener and the control loop.

The operator's keys (or the auto-intervention detector) change the state from a listener thread;
the control loop reads it once per step through :meth:`TeleopEventState.snapshot`. Episode-ending
events (success, failure, re-record) are one-shot: a snapshot reports them once and clears them,
so one key press ends exactly one episode. Intervention is a level: it stays on until toggled off.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from lerobot.teleoperators.utils import TeleopEvents

from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Key names accepted besides single printable characters (pynput ``Key`` attribute names).
NAMED_KEYS = (
    "space",
    "enter",
    "esc",
    "tab",
    "backspace",
    "up",
    "down",
    "left",
    "right",
    *(f"f{i}" for i in range(1, 13)),
)

#: Actions a key can trigger; the values are the config fields that bind them.
KEY_ACTIONS = ("intervention", "success", "failure", "rerecord")


def validate_key_name(field: str, key: str) -> str:
    """Check that a key name can be bound, and normalise it to lower case.

    Args:
        field: Config field the key comes from (for the error message).
        key: A single printable character or one of :data:`NAMED_KEYS`.

    Returns:
        The normalised key name.

    Raises:
        ValueError: If the key cannot be bound.
    """
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{field}={key!r} is invalid; allowed values: a single character or {NAMED_KEYS}")
    name = key.lower()
    if len(name) == 1 and name.isprintable() and not name.isspace():
        return name
    if name in NAMED_KEYS:
        return name
    raise ConfigError(f"{field}={key!r} is invalid; allowed values: a single character or {NAMED_KEYS}")


class TeleopEventState:
    """Thread-safe intervention flag plus one-shot episode events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervention = False
        self._success = False
        self._failure = False
        self._rerecord = False
        self.intervention_changes = 0

    @property
    def is_intervention(self) -> bool:
        """Whether the human currently drives the follower."""
        with self._lock:
            return self._intervention

    def set_intervention(self, active: bool) -> None:
        """Start (``True``) or end (``False``) an intervention."""
        with self._lock:
            if self._intervention != bool(active):
                self.intervention_changes += 1
                logger.info(
                    "Intervention %s", "ON: the leader drives" if active else "OFF: the policy drives"
                )
            self._intervention = bool(active)

    def toggle_intervention(self) -> None:
        """Flip the intervention flag (what the intervention key does)."""
        self.set_intervention(not self.is_intervention)

    def mark_success(self) -> None:
        """End the episode as a success."""
        with self._lock:
            self._success = True

    def mark_failure(self) -> None:
        """End the episode as a failure."""
        with self._lock:
            self._failure = True

    def request_rerecord(self) -> None:
        """End the episode and ask the recorder to drop and record it again."""
        with self._lock:
            self._rerecord = True

    def trigger(self, action: str) -> None:
        """Apply one of :data:`KEY_ACTIONS`.

        Args:
            action: ``"intervention"`` (toggle), ``"success"``, ``"failure"`` or ``"rerecord"``.

        Raises:
            ValueError: For another action name.
        """
        handlers = {
            "intervention": self.toggle_intervention,
            "success": self.mark_success,
            "failure": self.mark_failure,
            "rerecord": self.request_rerecord,
        }
        if action not in handlers:
            raise ValueError(f"action={action!r} is invalid; allowed values: {KEY_ACTIONS}")
        handlers[action]()

    def snapshot(self) -> dict[TeleopEvents, Any]:
        """Read the events for this control step, clearing the one-shot ones.

        Returns:
            LeRobot's HIL-SERL event dict: ``IS_INTERVENTION``, ``TERMINATE_EPISODE`` (failure or
            re-record), ``SUCCESS``, ``FAILURE`` and ``RERECORD_EPISODE``.
        """
        with self._lock:
            events = {
                TeleopEvents.IS_INTERVENTION: self._intervention,
                TeleopEvents.TERMINATE_EPISODE: self._failure or self._rerecord,
                TeleopEvents.SUCCESS: self._success,
                TeleopEvents.FAILURE: self._failure,
                TeleopEvents.RERECORD_EPISODE: self._rerecord,
            }
            self._success = self._failure = self._rerecord = False
        return events


class KeyboardEventListener:
    """Binds keys to :class:`TeleopEventState` actions with a pynput listener thread.

    Args:
        state: The state the keys act on.
        bindings: Key name -> action (one of :data:`KEY_ACTIONS`).
    """

    def __init__(self, state: TeleopEventState, bindings: dict[str, str]):
        self.state = state
        self.bindings = dict(bindings)
        self._listener = None

    def handle_key(self, name: str) -> None:
        """Dispatch a key name (as :func:`validate_key_name` normalises it) to its action."""
        action = self.bindings.get(name)
        if action is not None:
            self.state.trigger(action)

    def start(self) -> None:
        """Start listening to the keyboard.

        Raises:
            RuntimeError: If pynput cannot reach a keyboard (no display / no input access).
        """
        try:
            from pynput import keyboard
        except Exception as exc:  # pynput raises ImportError subclasses and display errors on import
            raise RuntimeError(
                "The SO101 leader's event keys need a keyboard reachable by pynput (an X/Wayland session or "
                f"input-device access), but pynput failed: {exc}. Run from the robot's desktop session, or "
                "set teleop.use_keyboard=false and rely on teleop.auto_intervention_threshold."
            ) from exc

        def on_press(key) -> None:
            name = getattr(key, "char", None) or getattr(key, "name", None)
            if name:
                self.handle_key(str(name).lower())

        self._listener = keyboard.Listener(on_press=on_press)
        self._listener.start()

    def stop(self) -> None:
        """Stop the listener thread if it runs."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
