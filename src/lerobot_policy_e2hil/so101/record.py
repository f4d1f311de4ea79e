"""Record demonstrations with the SO101 leader, or replay a recorded episode on the follower.

Usage::

    python -m lerobot_policy_e2hil.so101.record --config_path HIL-SERL/env_config_so101.json
    python -m lerobot_policy_e2hil.so101.record --config_path HIL-SERL/env_config_so101.json \\
        --mode=replay --dataset.replay_episode=0

This is LeRobot's ``lerobot/rl/gym_manipulator.py`` (same ``make_robot_env``, ``make_processors``,
``control_loop`` and ``replay_trajectory``; same dataset layout, which the learner's offline buffer
reads), with three differences: our plugin is imported first so ``so101_leader_hil`` parses; the
env block is the checked :class:`~.config_env.SO101HILEnvConfig`; and the leader is put in control
for the whole recording (``mode=record``) and kept out of it while replaying (``mode=replay``), since
in joint space the recorder's neutral action has no meaning for the follower.
"""

# No ``from __future__ import annotations``: LeRobot's ``parser.wrap`` reads the annotation as a type.

import logging
from dataclasses import dataclass

from lerobot.configs import parser
from lerobot.rl.gym_manipulator import DatasetConfig

from ..errors import ConfigError, check_command_line, exit_on_setup_error
from ..lerobot_layer import patches
from .config_env import SO101HILEnvConfig

MODES = ("record", "replay")
logger = logging.getLogger(__name__)


@dataclass
class SO101RecordConfig:
    """Top-level config of the record / replay command (the shape of ``env_config_so101.json``).

    Attributes:
        env: The SO101 env (follower, leader, cameras, processors).
        dataset: Where the episodes go (``repo_id``, ``root``, ``task``, ``num_episodes_to_record``)
            and which one to replay (``replay_episode``).
        mode: ``"record"`` or ``"replay"``.
        device: Torch device of the env processors.
    """

    env: SO101HILEnvConfig
    dataset: DatasetConfig
    mode: str = "record"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is invalid; allowed values: {MODES}")
        if self.mode == "replay" and self.dataset.replay_episode is None:
            raise ConfigError(
                "dataset.replay_episode=None is invalid with mode='replay'; allowed values: an episode index >= 0"
            )
        if self.mode == "record" and self.dataset.num_episodes_to_record <= 0:
            raise ConfigError(
                f"dataset.num_episodes_to_record={self.dataset.num_episodes_to_record} is invalid; "
                "allowed values: >= 1"
            )


def run(cfg: SO101RecordConfig) -> None:
    """Record or replay as ``cfg.mode`` says.

    Args:
        cfg: The parsed config.
    """
    from lerobot.rl import gym_manipulator

    cfg.env.require_robot()
    teleop_cfg = cfg.env.teleop
    if hasattr(teleop_cfg, "start_in_intervention"):
        teleop_cfg.start_in_intervention = cfg.mode == "record"
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    created = _track_created_datasets()
    try:
        env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, cfg.device)
        if cfg.mode == "replay":
            gym_manipulator.replay_trajectory(env, action_processor, cfg)
        else:
            gym_manipulator.control_loop(env, env_processor, action_processor, teleop, cfg)
    finally:
        patches.unhook(_CREATE, "so101.record")
        # LeRobot 0.6.1's control_loop finalizes the dataset only when pushing to the hub; without
        # finalize() the episode metadata stays in memory and the dataset on disk is unreadable.
        for dataset in created:
            dataset.finalize()
        if teleop is not None and teleop.is_connected:
            teleop.disconnect()
        env.close()


_CREATE = "lerobot.rl.gym_manipulator.LeRobotDataset.create"


def _track_created_datasets() -> list:
    """The datasets ``gym_manipulator``'s ``LeRobotDataset.create`` creates from now on (a hook; unhook to stop)."""
    patches.install("record")
    created: list = []

    def create(call: patches.Call) -> object:
        dataset = call.proceed()
        created.append(dataset)
        return dataset

    patches.hook(_CREATE, "so101.record", create)
    return created


@parser.wrap()
def _parse_and_run(cfg: SO101RecordConfig) -> None:
    run(cfg)


def main() -> None:
    """CLI entry point (``--config_path`` plus dotted overrides).

    A bad config ends the process with one ``error: <field and allowed values>`` line and exit
    status 2.
    """
    import sys

    config_path = parser.parse_arg("config_path", sys.argv[1:])
    check_command_line(SO101RecordConfig, sys.argv[1:])
    try:
        _parse_and_run()
    except Exception as err:
        exit_on_setup_error(err, config_path)


if __name__ == "__main__":
    main()
