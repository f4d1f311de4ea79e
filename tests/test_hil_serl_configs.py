"""Every JSON config in HIL-SERL/ parses into the LeRobot config class it targets, plugin loaded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import draccus
import pytest

import lerobot_policy_e2hil  # noqa: F401  (registers e2hil, so101_hil, so101_leader_hil, sim envs)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "HIL-SERL"
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.json"))


def target_class(raw: dict):
    """Pick the top-level config class a HIL-SERL JSON file is written for, from its shape.

    * ``reward_model`` block -> ``lerobot-train``'s ``TrainPipelineConfig``;
    * ``algorithm`` or ``policy`` block (with an env) -> the RL learner/actor's ``TrainRLServerPipelineConfig``;
    * ``env`` without a ``type`` plus ``dataset`` -> a record/replay (gym_manipulator-style) config: ours
      for SO101 envs, LeRobot's ``GymManipulatorConfig`` otherwise.
    """
    if "reward_model" in raw:
        from lerobot.configs.train import TrainPipelineConfig
        from lerobot.rewards.classifier import configuration_classifier  # noqa: F401  (as lerobot-train)

        return TrainPipelineConfig
    if "algorithm" in raw or "policy" in raw:
        from lerobot.rl.train_rl import TrainRLServerPipelineConfig

        return TrainRLServerPipelineConfig
    if "env" in raw and "type" not in raw["env"]:
        robot_type = (raw["env"].get("robot") or {}).get("type", "")
        if robot_type.startswith("so101"):
            from lerobot_policy_e2hil.so101.record import SO101RecordConfig

            return SO101RecordConfig
        from lerobot.rl.gym_manipulator import GymManipulatorConfig

        return GymManipulatorConfig
    raise AssertionError(f"unrecognised HIL-SERL config shape: top-level keys {sorted(raw)}")


def test_the_so101_configs_exist():
    names = {p.name for p in CONFIG_FILES}
    for expected in (
        "env_config_so101.json",
        "reward_classifier_train_config.json",
        "train_config_e2hil_so101.json",
        "train_config_hilserl_so101.json",
    ):
        assert expected in names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_parses_into_its_lerobot_class(path: Path):
    raw = json.loads(path.read_text())
    cls = target_class(raw)
    cfg = draccus.parse(cls, config_path=str(path), args=[])
    assert isinstance(cfg, cls)
    if "env" in raw and raw["env"].get("robot"):
        from lerobot.robots.config import RobotConfig

        assert type(cfg.env.robot) is RobotConfig.get_choice_class(raw["env"]["robot"]["type"])
    if "algorithm" in raw:
        assert cfg.algorithm.type == raw["algorithm"]["type"]


def _load(name: str):
    path = CONFIG_DIR / name
    raw = json.loads(path.read_text())
    return raw, draccus.parse(target_class(raw), config_path=str(path), args=[])


def raw_types(env) -> tuple[str, str]:
    """(robot type, teleop type) as written in the JSON (a class registered twice reports its last name)."""
    from lerobot.robots.config import RobotConfig

    robot_type = (
        "so101_follower" if type(env.robot) is RobotConfig.get_choice_class("so101_follower") else "?"
    )
    return robot_type, env.teleop.type


def test_env_config_has_the_paper_setup():
    _, cfg = _load("env_config_so101.json")
    env = cfg.env
    assert raw_types(env) == ("so101_follower", "so101_leader_hil")
    assert env.robot.port and env.teleop.port and env.robot.port != env.teleop.port
    assert sorted(env.robot.cameras) == ["front", "wrist"]
    assert env.fps == 10
    assert cfg.dataset.num_episodes_to_record == 10
    crops = env.processor.image_preprocessing.crop_params_dict
    assert set(crops) == {"observation.images.front", "observation.images.wrist"}
    assert tuple(env.processor.image_preprocessing.resize_size) == (128, 128)
    bounds = env.processor.inverse_kinematics.end_effector_bounds
    assert all(lo < hi for lo, hi in zip(bounds["min"], bounds["max"], strict=True))
    assert len(env.processor.reset.fixed_reset_joint_positions) == 6


def test_train_configs_differ_only_in_the_algorithm_block():
    from lerobot.rl.algorithms.sac import SACAlgorithmConfig

    from lerobot_policy_e2hil.algorithm.configuration_e2hil import E2HiLAlgorithmConfig

    e2hil_raw, e2hil = _load("train_config_e2hil_so101.json")
    sac_raw, sac = _load("train_config_hilserl_so101.json")
    strip = {"algorithm", "job_name"}
    assert {k: v for k, v in e2hil_raw.items() if k not in strip} == {
        k: v for k, v in sac_raw.items() if k not in strip
    }
    extra = set(e2hil_raw["algorithm"]) - set(sac_raw["algorithm"])
    own = {f.name for f in dataclasses.fields(E2HiLAlgorithmConfig)} - {
        f.name for f in dataclasses.fields(SACAlgorithmConfig)
    }
    assert "num_action_samples" in own and extra <= own | {"type"}
    shared = set(sac_raw["algorithm"]) - {"type"}
    assert {k: e2hil_raw["algorithm"][k] for k in shared} == {k: sac_raw["algorithm"][k] for k in shared}
    assert e2hil.algorithm.type == "e2hil" and sac.algorithm.type == "sac"
    assert e2hil.algorithm.num_action_samples == 8
    assert e2hil.algorithm.influence_lower_quantile == 0.05
    assert e2hil.algorithm.influence_upper_quantile == 0.90
    assert e2hil.env.type == "so101_hil"
    assert sorted(e2hil.env.robot.cameras) == ["front", "wrist"]
    image_inputs = [k for k in e2hil.policy.input_features if k.startswith("observation.images.")]
    assert sorted(image_inputs) == ["observation.images.front", "observation.images.wrist"]


def test_reward_classifier_config_uses_both_cameras():
    _, cfg = _load("reward_classifier_train_config.json")
    assert cfg.reward_model.type == "reward_classifier"
    assert cfg.reward_model.num_cameras == 2
    _, env_cfg = _load("env_config_so101.json")
    assert cfg.dataset.repo_id == env_cfg.dataset.repo_id
