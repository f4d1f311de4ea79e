"""Learner-side check of every transition an actor sends, before it reaches the replay buffer.

LeRobot 0.6.1 only skips transitions with NaN in observations or actions: inf values and bad
rewards go into the buffer, and a transition with a wrong shape makes ``ReplayBuffer.add``
raise, which ends the learner's training loop. :class:`TransitionValidator` checks shapes
against the policy's configured features and finiteness of observations, actions, rewards and
complementary info, keeps the good transitions, counts the others, and warns at most once per
interval.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from lerobot.utils.constants import ACTION

from ..wire.tensors import DecodeError


def _shape_matches(tensor: torch.Tensor, shape: tuple[int, ...]) -> bool:
    """True for ``shape`` itself or ``shape`` with a leading batch dimension of 1."""
    actual = tuple(tensor.shape)
    return actual == shape or actual == (1, *shape)


def _is_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    return _is_scalar(value) and math.isfinite(float(value))


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, numbers.Real | np.bool_ | np.integer | np.floating)


class TransitionSpec:
    """What a valid transition looks like for one policy config.

    Args:
        state_shapes: Observation key -> shape without batch dimension (``policy.input_features``).
        action_shape: Shape of the stored action: the continuous action, plus one entry for the
            discrete (gripper) action when the policy has one.
    """

    def __init__(self, state_shapes: dict[str, tuple[int, ...]], action_shape: tuple[int, ...]):
        self.state_shapes = state_shapes
        self.action_shape = action_shape

    @classmethod
    def from_policy_config(cls, policy_cfg: Any) -> TransitionSpec:
        """The spec of a ``PreTrainedConfig`` whose features are set (after ``make_policy``)."""
        state = {key: tuple(feature.shape) for key, feature in policy_cfg.input_features.items()}
        action = tuple(policy_cfg.output_features[ACTION].shape)
        if getattr(policy_cfg, "num_discrete_actions", None) is not None:
            action = (*action[:-1], action[-1] + 1)
        return cls(state, action)

    def problem(self, transition: Any) -> str | None:
        """Why ``transition`` cannot go into the replay buffer, or None when it can."""
        if not isinstance(transition, dict):
            return f"not a transition dict ({type(transition).__name__})"
        for part in ("state", "next_state"):
            reason = self._observation_problem(part, transition.get(part))
            if reason:
                return reason
        action = transition.get(ACTION)
        if not isinstance(action, torch.Tensor) or not _shape_matches(action, self.action_shape):
            return f"action shape {_describe(action)}, expected {self.action_shape}"
        if not _is_finite(action):
            return "non-finite action"
        for name in ("reward", "done", "truncated"):
            if not _is_scalar(transition.get(name)):
                return f"{name} is not a scalar ({_describe(transition.get(name))})"
        if not _is_finite(transition["reward"]):
            return "non-finite reward"
        return self._complementary_problem(transition.get("complementary_info"))

    def _observation_problem(self, part: str, observation: Any) -> str | None:
        if not isinstance(observation, dict):
            return f"{part} is not a dict"
        for key, shape in self.state_shapes.items():
            value = observation.get(key)
            if not isinstance(value, torch.Tensor):
                return f"{part}[{key!r}] missing"
            if not _shape_matches(value, shape):
                return f"{part}[{key!r}] shape {tuple(value.shape)}, expected {shape}"
            if not _is_finite(value):
                return f"non-finite {part}[{key!r}]"
        return None

    @staticmethod
    def _complementary_problem(info: Any) -> str | None:
        if info is None:
            return None
        if not isinstance(info, dict):
            return "complementary_info is not a dict"
        for key, value in info.items():
            if not isinstance(value, torch.Tensor) and not _is_scalar(value):
                return f"complementary_info[{key!r}] has type {type(value).__name__}"
            if not _is_finite(value):
                return f"non-finite complementary_info[{key!r}]"
        return None


def _describe(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


class TransitionValidator:
    """Filters decoded transition lists, counts what it accepts and rejects, warns rate-limited.

    Args:
        spec: A callable returning the :class:`TransitionSpec`; called at the first message, once
            the learner has built its policy and the features are known.
        warn_interval_s: At most one warning per this many seconds (the first comes at once).
    """

    def __init__(self, spec: Callable[[], TransitionSpec], warn_interval_s: float):
        self._spec_factory = spec
        self._spec: TransitionSpec | None = None
        self.warn_interval_s = warn_interval_s
        self.accepted = 0
        self.rejected = 0
        self.rejected_messages = 0
        self._pending: Counter[str] = Counter()
        self._last_warning = -math.inf
        self._lock = threading.Lock()
        self.listeners: list[Callable[[int, int], None]] = []

    @property
    def spec(self) -> TransitionSpec:
        if self._spec is None:
            self._spec = self._spec_factory()
        return self._spec

    def filter(self, transitions: Iterable[Any]) -> list[Any]:
        """The valid transitions of one message, in order; the others are counted and reported."""
        kept = []
        with self._lock:
            for transition in transitions:
                reason = self.spec.problem(transition)
                if reason is None:
                    kept.append(transition)
                else:
                    self.rejected += 1
                    self._pending[reason] += 1
            self.accepted += len(kept)
            self._maybe_warn()
        for listener in self.listeners:
            listener(len(kept), self.rejected)
        return kept

    def reject_message(self, error: BaseException, sender: str | None = None) -> None:
        """Count a message that could not be decoded at all (a :class:`~..wire.tensors.DecodeError` says why).

        Args:
            error: Why it did not decode.
            sender: The actor id it came from, named in the warning.
        """
        what = str(error) if isinstance(error, DecodeError) else type(error).__name__
        with self._lock:
            self.rejected_messages += 1
            self._pending[f"undecodable message ({what})" + (f" from {sender}" if sender else "")] += 1
            self._maybe_warn()

    def _maybe_warn(self) -> None:
        now = time.monotonic()
        if not self._pending or now - self._last_warning < self.warn_interval_s:
            return
        reasons = ", ".join(f"{reason}: {count}" for reason, count in self._pending.most_common())
        logging.warning(
            f"[LEARNER] Skipped bad transitions from the actor ({reasons}); totals: "
            f"{self.rejected} transitions and {self.rejected_messages} messages skipped, "
            f"{self.accepted} accepted. Training goes on."
        )
        self._pending.clear()
        self._last_warning = now
