"""Every config type the plugin registers builds from its defaults, as LeRobot's registry tests expect.

LeRobot's own ``tests/envs/test_dispatch.py::test_registry_all_types`` builds every registered env
type with ``make_env_config(type)``; with the plugin imported, ``so101_hil`` raised there.
"""

from __future__ import annotations

import pytest
from lerobot.cameras import CameraConfig
from lerobot.envs.configs import EnvConfig
from lerobot.envs.factory import make_env_config
from lerobot.rl.algorithms.base import RLAlgorithmConfig
from lerobot.robots import RobotConfig
from lerobot.teleoperators import TeleoperatorConfig

import lerobot_policy_e2hil  # noqa: F401
from lerobot_policy_e2hil.errors import ConfigError

BASES = (EnvConfig, RobotConfig, TeleoperatorConfig, CameraConfig, RLAlgorithmConfig)
PLUGIN_TYPES = [
    (base, name, cls)
    for base in BASES
    for name, cls in base.get_known_choices().items()
    if cls.__module__.startswith("lerobot_policy_e2hil.")
]


def test_the_plugin_registers_envs_robots_and_teleoperators():
    kinds = {base.__name__ for base, _, _ in PLUGIN_TYPES}
    assert {"EnvConfig", "RobotConfig", "TeleoperatorConfig"} <= kinds
    assert "so101_hil" in {name for _, name, _ in PLUGIN_TYPES}


@pytest.mark.parametrize(("base", "name", "cls"), PLUGIN_TYPES, ids=[name for _, name, _ in PLUGIN_TYPES])
def test_registered_type_builds_from_its_defaults(base, name, cls):
    cfg = cls()
    assert isinstance(cfg, base) and cfg.type == name


def test_every_registered_env_type_builds_through_lerobots_factory():
    for name in EnvConfig.get_known_choices():
        assert make_env_config(name).type == name


def test_a_missing_robot_is_reported_where_the_robot_is_used():
    env = make_env_config("so101_hil")
    with pytest.raises(ConfigError, match=r"^env\.robot=None is invalid; allowed values: a follower config"):
        env.require_robot()


def test_a_missing_leader_port_is_reported_where_the_leader_connects():
    from lerobot_policy_e2hil.so101.config_leader import SO101LeaderHILConfig

    with pytest.raises(ConfigError, match=r"^teleop\.port=None is invalid"):
        SO101LeaderHILConfig().require_port()
