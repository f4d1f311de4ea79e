"""``"algorithm": {"type": "sac_fast"}``: LeRobot's SAC with the same-result fast update.

LeRobot's ``"sac"`` stays LeRobot's config and class, built unchanged. ``"sac_fast"`` is its
config plus one field, ``fast_update``, and an algorithm class with :class:`.fast_update.FastUpdateMixin`
in front: the same parameters and losses bit for bit (tests/test_fast_update.py), in less time.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig

from ..errors import ConfigError
from ..lerobot_layer.registry import register_algorithm
from .fast_update import FastUpdateMixin


@RLAlgorithmConfig.register_subclass("sac_fast")
@dataclass
class SACFastAlgorithmConfig(SACAlgorithmConfig):
    """LeRobot's SAC config; every field keeps its meaning and default."""

    # True: the fast update (LeRobot's numbers bit for bit, less time); False: LeRobot's update, as "sac"
    fast_update: bool = True

    def __post_init__(self) -> None:
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        if not isinstance(self.fast_update, bool):
            raise ConfigError(
                f"algorithm.fast_update={self.fast_update!r} is invalid for type 'sac_fast'; "
                "allowed values: true, false"
            )


@register_algorithm("sac_fast")
class SACFastAlgorithm(FastUpdateMixin, SACAlgorithm):
    """LeRobot's ``SACAlgorithm`` with the fast update (when its config's ``fast_update`` is true)."""

    config_class = SACFastAlgorithmConfig
    name = "sac_fast"
    config: SACFastAlgorithmConfig
