"""The simulated SO101 follower in MuJoCo (``physics="mujoco"``): joints under physics, rendered cameras."""

from pathlib import Path

import numpy as np
import pytest
from lerobot.cameras.opencv import OpenCVCameraConfig

from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.so101 import dry_run
from lerobot_policy_e2hil.so101.config_simulated import PHYSICS, SO101FollowerSimConfig
from lerobot_policy_e2hil.so101.simulated import SO101FollowerSim

GOAL = {
    "shoulder_pan.pos": 20.0,
    "shoulder_lift.pos": -15.0,
    "elbow_flex.pos": 10.0,
    "wrist_flex.pos": 5.0,
    "wrist_roll.pos": -10.0,
    "gripper.pos": 50.0,
}


@pytest.fixture
def follower(tmp_path):
    camera = OpenCVCameraConfig(index_or_path=0, width=64, height=48, fps=30)
    config = SO101FollowerSimConfig(
        port="/dev/sim-follower",
        physics="mujoco",
        cameras={"front": camera, "wrist": camera},
        calibration_dir=Path(tmp_path),
        id="mujoco_test",
    )
    robot = SO101FollowerSim(config)
    robot.connect(calibrate=False)
    yield robot
    robot.disconnect()


def positions(robot) -> dict[str, float]:
    return {k: v for k, v in robot.get_observation().items() if k.endswith(".pos")}


@pytest.mark.slow
def test_follower_moves_its_joints_toward_the_commanded_positions(follower):
    start = positions(follower)
    follower.send_action(GOAL)
    follower.arm.advance(1.0)
    reached = positions(follower)
    for key, goal in GOAL.items():
        assert abs(reached[key] - goal) < 0.2 * abs(start[key] - goal) + 3.0, (key, start[key], reached[key])
    # The goal is the actuator's setpoint, not the joint's position: nothing moves without physics time
    follower.arm.command("shoulder_pan", follower.arm.ticks("shoulder_pan", -0.5))
    held = follower.arm.joint_ticks("shoulder_pan")
    assert follower.arm.joint_ticks("shoulder_pan") == held
    follower.arm.advance(0.5)
    assert abs(follower.arm.joint_ticks("shoulder_pan") - follower.arm.ticks("shoulder_pan", -0.5)) < 20


@pytest.mark.slow
def test_cameras_render_the_scene_and_see_the_arm_move(follower):
    before = follower.get_observation()
    assert before["front"].shape == (48, 64, 3) and before["front"].dtype == np.uint8
    assert before["front"].std() > 0 and before["wrist"].std() > 0
    follower.send_action({**GOAL, "shoulder_pan.pos": 60.0})
    follower.arm.advance(1.0)
    after = follower.get_observation()
    assert np.abs(after["front"].astype(int) - before["front"].astype(int)).sum() > 0


@pytest.mark.slow
def test_cameras_render_plainly(follower):
    """No multisampling, shadows or reflections: what makes a frame ~10x slower on llvmpipe is off."""
    import mujoco

    follower.get_observation()
    for name in ("front", "wrist"):
        camera = follower.cameras[name]
        flags = camera._renderer.scene.flags
        assert not flags[mujoco.mjtRndFlag.mjRND_SHADOW] and not flags[mujoco.mjtRndFlag.mjRND_REFLECTION]
        assert camera.arm.model.vis.quality.offsamples == 0


def test_physics_value_is_checked():
    with pytest.raises(
        ConfigError, match=r"robot\.physics='bullet' is invalid; allowed values: 'instant', 'mujoco'"
    ):
        SO101FollowerSimConfig(port="/dev/sim", physics="bullet")


def test_dry_run_can_put_the_follower_in_mujoco(tmp_path):
    assert dry_run.PHYSICS == PHYSICS
    cfg = dry_run.DryRunConfig(output_dir=str(tmp_path / "run"), follower_physics="mujoco")
    paths = dry_run.Paths(Path(cfg.output_dir))
    for argv in (dry_run.record_argv(cfg, paths), dry_run.learner_argv(cfg, paths, 50051)):
        assert "--env.robot.physics=mujoco" in argv
    default = dry_run.DryRunConfig(output_dir=cfg.output_dir)
    assert dry_run.record_argv(default, paths) == dry_run.record_argv(cfg, paths)
    instant = dry_run.DryRunConfig(output_dir=cfg.output_dir, follower_physics="instant")
    assert "--env.robot.physics=instant" in dry_run.record_argv(instant, paths)
    with pytest.raises(ConfigError, match="follower_physics='bullet' is invalid"):
        dry_run.DryRunConfig(output_dir=str(tmp_path / "x"), follower_physics="bullet")
