"""Configs of simulated SO101 devices (``so101_follower_sim``, ``so101_leader_hil_sim``).

They take every field of the real devices' configs (port, cameras, max_relative_target, keys, ...)
so a real-robot config runs unchanged with only the ``type`` switched. The port names the simulated
bus; cameras become synthetic cameras of the configured size. Nothing opens a device.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.robots.config import RobotConfig
from lerobot.robots.so_follower.config_so_follower import SOFollowerRobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig

from .config_leader import SO101LeaderHILConfig


@RobotConfig.register_subclass("so101_follower_sim")
@dataclass
class SO101FollowerSimConfig(SOFollowerRobotConfig):
    """SO101 follower over a simulated Feetech bus and synthetic cameras."""


@TeleoperatorConfig.register_subclass("so101_leader_hil_sim")
@dataclass
class SO101LeaderHILSimConfig(SO101LeaderHILConfig):
    """SO101 HIL leader over a simulated Feetech bus; the keyboard is off by default."""

    use_keyboard: bool = False
