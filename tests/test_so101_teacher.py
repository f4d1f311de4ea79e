"""The scripted teacher of the simulated SO101 leader (``teleop.script="pick_cube"``) in MuJoCo.

The env is LeRobot's ``gym_manipulator`` (``make_robot_env``, ``make_processors``, the step the
actor and the recorder run), built from ``HIL-SERL/env_config_so101.json`` (end-effector control
through LeRobot's kinematics on the packaged URDF, its safety limits) with the simulated devices,
the follower in MuJoCo, no cameras. Nothing but the neutral action of the recorder is given:
every motion comes from the teacher moving the leader.
"""

from __future__ import annotations

import json
from pathlib import Path

import draccus
import numpy as np
import pytest
import torch
from lerobot.processor import TransitionKey
from lerobot.rl import gym_manipulator
from lerobot.teleoperators.utils import TeleopEvents

import lerobot_policy_e2hil  # noqa: F401
from lerobot_policy_e2hil.errors import ConfigError, SetupError
from lerobot_policy_e2hil.rollout import step
from lerobot_policy_e2hil.so101 import mujoco_arm, teacher
from lerobot_policy_e2hil.so101.config_simulated import SCRIPTS, SO101LeaderHILSimConfig
from lerobot_policy_e2hil.so101.record import SO101RecordConfig
from lerobot_policy_e2hil.so101.simulated import SO101LeaderHILSim

ENV_CONFIG = Path(__file__).resolve().parents[1] / "HIL-SERL" / "env_config_so101.json"
#: The recorder's action while the leader drives: no motion, gripper "stay".
NEUTRAL = torch.tensor([0.0, 0.0, 0.0, 1.0])
#: Simulated seconds per env step (the configs' 10 Hz), on top of the wall time physics runs by itself.
DT = 0.1
#: Steps the teacher gets to reach the cube and close on it (the shipped 2 cm end-effector step).
MAX_STEPS = 80


def teacher_config(tmp_path: Path, takeover_step: int = 0) -> SO101RecordConfig:
    """The shipped env config on the simulated arms, the follower in MuJoCo, the script on."""
    raw = json.loads(ENV_CONFIG.read_text())
    env = raw["env"]
    env["robot"].update(type="so101_follower_sim", physics="mujoco")
    env["teleop"].update(
        type="so101_leader_hil_sim",
        use_keyboard=False,
        script="pick_cube",
        script_takeover_step=takeover_step,
    )
    for device in ("robot", "teleop"):
        env[device]["calibration_dir"] = str(tmp_path / "calibration" / device)
    # No cameras: rendering costs seconds a frame on a loaded CPU, and the teacher does not look.
    env["robot"]["cameras"] = {}
    env["processor"]["image_preprocessing"] = None
    env["processor"]["reset"].update(reset_time_s=0.0, control_time_s=60.0, terminate_on_success=False)
    raw["dataset"]["root"] = str(tmp_path / "dataset")
    path = tmp_path / "env_config_teacher.json"
    path.write_text(json.dumps(raw))
    return draccus.parse(SO101RecordConfig, config_path=str(path), args=[])


@pytest.fixture
def teacher_env(tmp_path, request):
    cfg = teacher_config(tmp_path, **getattr(request, "param", {}))
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, "cpu")
    yield env, teleop, env_processor, action_processor
    teleop.disconnect()
    env.close()


def cube_height(env) -> float:
    arm = env.robot.arm
    with arm.lock:
        return float(arm.data.xpos[arm.model.body("block").id][2])


def run(env, teleop, env_processor, action_processor, transition, steps, until=None):
    """Step the env with the neutral action ``steps`` times (or until ``until(teacher)``); what happened."""
    record = {"intervention": [], "success": [], "actions": [], "grasp_to_cube": [], "jaw": []}
    for _ in range(steps):
        transition = step(env, transition, NEUTRAL, env_processor, action_processor)
        env.robot.arm.advance(DT)
        info = transition[TransitionKey.INFO]
        record["intervention"].append(bool(info[TeleopEvents.IS_INTERVENTION]))
        record["success"].append(bool(info[TeleopEvents.SUCCESS]))
        record["actions"].append(np.asarray(transition[TransitionKey.COMPLEMENTARY_DATA]["teleop_action"]))
        grasp, cube, _, _ = teleop.teacher._observe()
        record["grasp_to_cube"].append(float(np.linalg.norm(grasp - cube)))
        record["jaw"].append(env.robot.joint_positions()["gripper"])
        if until is not None and until(teleop.teacher):
            break
    return transition, record


def lift_cube(env, height: float) -> None:
    """Raise the cube by ``height`` (a stand-in for a grasp that held), at rest."""
    import mujoco

    arm = env.robot.arm
    start = int(arm.model.joint("block").qposadr[0])
    with arm.lock:
        arm.data.qpos[start + 2] += height
        arm.data.qvel[:] = 0.0
        mujoco.mj_forward(arm.model, arm.data)


def closing(t) -> bool:
    """The teacher has closed the follower's gripper at the cube for its whole closing time."""
    return t.episode.phase is teacher.Phase.CLOSE and t.episode.phase_steps >= teacher.CLOSE_STEPS


@pytest.mark.slow
def test_teacher_reaches_the_cube_and_closes_through_the_ee_pipeline(teacher_env):
    env, teleop, env_processor, action_processor = teacher_env
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    transition, record = run(env, teleop, env_processor, action_processor, transition, MAX_STEPS, closing)

    assert closing(teleop.teacher), f"still in {teleop.teacher.episode.phase} after {MAX_STEPS} steps"
    assert all(record["intervention"]), "the teacher drives (intervention on) from the first step"
    assert not any(record["success"]), "the cube was not lifted: no success"
    # The follower's jaws went from 12 cm away to the cube (grasp point within 2.5 cm of its centre),
    # then the follower's gripper closed.
    assert record["grasp_to_cube"][0] > 0.1 and min(record["grasp_to_cube"]) < 0.025
    assert max(record["jaw"]) > 40.0 and record["jaw"][-1] < 10.0
    # What the recorder stores: end-effector deltas within LeRobot's [-1, 1], not all zero, and the
    # discrete gripper command both ways (LeRobot's index 0 raises the gripper position, 2 lowers it).
    actions = np.array(record["actions"])
    assert np.abs(actions[:, :3]).max() <= 1.0 and np.abs(actions[:, :3]).sum() > 5.0
    assert {0.0, 2.0} <= set(actions[:, 3].tolist())


@pytest.mark.slow
def test_success_once_when_the_cube_is_lifted_and_a_reset_starts_over(teacher_env):
    env, teleop, env_processor, action_processor = teacher_env
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    start_height = cube_height(env)
    transition, record = run(env, teleop, env_processor, action_processor, transition, 3)
    assert not any(record["success"])
    lift_cube(env, 0.05)
    transition, record = run(env, teleop, env_processor, action_processor, transition, 4)
    assert record["success"] == [True, False, False, False], "success is reported once"
    assert all(record["intervention"]) and teleop.teacher.episode.phase is teacher.Phase.HOLD
    assert transition[TransitionKey.REWARD] == 0.0 and record["actions"]

    # The env's reset starts a new episode: the operator puts the cube back and starts over.
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    transition, record = run(env, teleop, env_processor, action_processor, transition, 1)
    assert teleop.teacher.episodes == 2 and teleop.teacher.episode.phase is teacher.Phase.HOVER
    assert abs(cube_height(env) - start_height) < 0.005


@pytest.mark.slow
@pytest.mark.parametrize("teacher_env", [{"takeover_step": 3}], indirect=True)
def test_policy_drives_until_the_takeover_step(teacher_env):
    env, teleop, env_processor, action_processor = teacher_env
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    flags, leader_moves, deltas, aligned = [], [], [], []
    for _ in range(6):
        before, follower = teleop.joint_positions(), env.robot.joint_positions()
        transition = step(env, transition, NEUTRAL, env_processor, action_processor)
        env.robot.arm.advance(DT)
        flags.append(bool(transition[TransitionKey.INFO][TeleopEvents.IS_INTERVENTION]))
        after = teleop.joint_positions()
        leader_moves.append(max(abs(after[k] - before[k]) for k in after))
        deltas.append(np.asarray(transition[TransitionKey.COMPLEMENTARY_DATA]["teleop_action"])[:3])
        aligned.append(max(abs(after[k] - follower[k]) for k in teacher.ARM_JOINTS))
    assert flags == [False, False, False, True, True, True]
    assert max(leader_moves[:3]) == 0.0 and max(leader_moves[3:]) > 10.0
    # Taking over puts the leader in the follower's pose, and reports no motion for that jump.
    assert aligned[3] < 0.5 and np.allclose(deltas[3], 0.0)
    assert np.abs(np.array(deltas[4:])).max() > 0.1


def test_script_needs_a_mujoco_follower(tmp_path, monkeypatch):
    monkeypatch.setattr(mujoco_arm, "_live", [])  # a process without a MuJoCo follower
    config = SO101LeaderHILSimConfig(
        port="/dev/sim-leader", script="pick_cube", use_keyboard=False, calibration_dir=tmp_path
    )
    leader = SO101LeaderHILSim(config)
    with pytest.raises(SetupError, match=r"teleop.script='pick_cube' needs the simulated follower in MuJoCo"):
        leader.connect(calibrate=False)
    assert not leader.is_connected


def test_script_values_are_checked():
    assert SCRIPTS == teacher.SCRIPTS
    with pytest.raises(
        ConfigError, match=r"teleop\.script='dance' is invalid; allowed values: 'none', 'pick_cube'"
    ):
        SO101LeaderHILSimConfig(port="/dev/sim", script="dance")
    with pytest.raises(
        ConfigError, match=r"teleop\.script_takeover_step=-1 is invalid; allowed values: an integer >= 0"
    ):
        SO101LeaderHILSimConfig(port="/dev/sim", script="pick_cube", script_takeover_step=-1)
    with pytest.raises(
        ConfigError, match=r"teleop\.use_degrees=False is invalid with teleop\.script='pick_cube'"
    ):
        SO101LeaderHILSimConfig(port="/dev/sim", script="pick_cube", use_degrees=False)
