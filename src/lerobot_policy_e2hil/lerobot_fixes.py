"""Small fixes for LeRobot 0.6.1 bugs that stop our users, installed when the plugin is imported.

Each fix wraps one LeRobot function, changes nothing for inputs that already worked, and is
idempotent. Remove a fix when the LeRobot release it works around is no longer supported.
"""

from __future__ import annotations

import functools

from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
from torch import Tensor

_FIXED = "_e2hil_fixed"


def install_select_action_fix() -> None:
    """Let ``GaussianActorPolicy.select_action`` take lerobot-eval's observation batches.

    lerobot-eval passes the preprocessed batch with non-tensor entries (``"task"``: a list of
    strings, ``"action"``: None); the policy's discrete (gripper) critic calls ``.to()`` on
    every entry and fails. The wrapper drops entries that are not tensors before the call;
    the actor and the critics read only tensor observation keys.
    """
    original = GaussianActorPolicy.select_action
    if getattr(original, _FIXED, False):
        return

    @functools.wraps(original)
    def select_action(self: GaussianActorPolicy, batch: dict) -> Tensor:
        return original(self, {key: value for key, value in batch.items() if isinstance(value, Tensor)})

    setattr(select_action, _FIXED, True)
    GaussianActorPolicy.select_action = select_action


def install_all() -> None:
    """Install every fix in this module."""
    install_select_action_fix()
