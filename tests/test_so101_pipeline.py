"""The real-robot HIL-SERL path with simulated SO101 arms: intervention switching, events, record, replay.

The env and processors are LeRobot's ``gym_manipulator.make_robot_env`` / ``make_processors`` /
``step_env_and_process_transition`` (what the actor calls every step), built from
``HIL-SERL/env_config_so101.json`` with only the device types switched to the simulated ones
(LeRobot's SOFollower and our SO101 leader over a simulated Feetech bus) and, where needed, the
URDF replaced by a toy 6-joint arm.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import draccus
import numpy as np
import pytest
import torch
from lerobot.processor import TransitionKey
from lerobot.rl import gym_manipulator
from lerobot.teleoperators.utils import TeleopEvents

import lerobot_policy_e2hil  # noqa: F401
from lerobot_policy_e2hil.rollout import step
from lerobot_policy_e2hil.so101 import record
from lerobot_policy_e2hil.so101.record import SO101RecordConfig

ENV_CONFIG = Path(__file__).resolve().parents[1] / "HIL-SERL" / "env_config_so101.json"
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
MAX_STEP = 10.0  # follower max_relative_target in the shipped config (degrees per step)


def toy_arm_urdf(path: Path) -> str:
    """Write a 6-joint serial arm whose joints carry the SO101 motor names; return its path."""
    chain = [
        ("shoulder_pan", "0 0 1", "0 0 0.05"),
        ("shoulder_lift", "0 1 0", "0 0 0.05"),
        ("elbow_flex", "0 1 0", "0.12 0 0"),
        ("wrist_flex", "0 1 0", "0.12 0 0"),
        ("wrist_roll", "1 0 0", "0.05 0 0"),
        ("gripper", "0 0 1", "0.02 0 0"),
    ]
    inertia = '<inertial><mass value="0.1"/><inertia ixx="1e-3" iyy="1e-3" izz="1e-3" ixy="0" ixz="0" iyz="0"/></inertial>'
    parts = [f'<link name="base">{inertia}</link>']
    parent = "base"
    for name, axis, xyz in chain:
        parts.append(f'<link name="{name}_link">{inertia}</link>')
        parts.append(
            f'<joint name="{name}" type="revolute"><parent link="{parent}"/><child link="{name}_link"/>'
            f'<origin xyz="{xyz}" rpy="0 0 0"/><axis xyz="{axis}"/>'
            '<limit lower="-3.1" upper="3.1" effort="10" velocity="10"/></joint>'
        )
        parent = f"{name}_link"
    parts.append('<link name="gripper_frame_link"/>')
    parts.append(
        f'<joint name="tip" type="fixed"><parent link="{parent}"/><child link="gripper_frame_link"/>'
        '<origin xyz="0.05 0 0" rpy="0 0 0"/></joint>'
    )
    path.write_text('<?xml version="1.0"?><robot name="toy_arm">' + "".join(parts) + "</robot>")
    return str(path)


def sim_config(tmp_path: Path, control_space: str = "joint", **dataset) -> SO101RecordConfig:
    """The shipped env config with simulated devices (and, for joint space, without IK)."""
    raw = json.loads(ENV_CONFIG.read_text())
    env = raw["env"]
    env["robot"]["type"] = "so101_follower_sim"
    env["teleop"]["type"] = "so101_leader_hil_sim"
    for device in ("robot", "teleop"):
        env[device]["calibration_dir"] = str(tmp_path / "calibration" / device)
    env["processor"]["reset"]["reset_time_s"] = 0.0
    env["processor"]["reset"]["control_time_s"] = 0.5
    env["teleop"]["control_space"] = control_space
    env["teleop"]["use_keyboard"] = False  # no display here; the tests press keys through teleop.events
    if control_space == "joint":
        env["processor"]["inverse_kinematics"] = None
    else:
        urdf = toy_arm_urdf(tmp_path / "toy_arm.urdf")
        env["processor"]["inverse_kinematics"]["urdf_path"] = urdf
        env["teleop"]["urdf_path"] = urdf
        # The toy arm's workspace: keep the configured box but reachable around its home pose.
        env["processor"]["inverse_kinematics"]["end_effector_bounds"] = {
            "min": [0.0, -0.3, -0.05],
            "max": [0.45, 0.3, 0.4],
        }
    raw["dataset"].update(root=str(tmp_path / "dataset"), **dataset)
    path = tmp_path / "env_config_sim.json"
    path.write_text(json.dumps(raw))
    return draccus.parse(SO101RecordConfig, config_path=str(path), args=[])


@pytest.fixture
def joint_env(tmp_path):
    cfg = sim_config(tmp_path)
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, "cpu")
    yield env, teleop, env_processor, action_processor
    teleop.disconnect()
    env.close()


def follower_joints(env) -> np.ndarray:
    positions = env.robot.joint_positions()
    return np.array([positions[j] for j in JOINTS])


def test_intervention_toggle_switches_executed_action_to_leader_and_back(joint_env):
    env, teleop, env_processor, action_processor = joint_env
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    reset_pose = np.array(
        json.loads(ENV_CONFIG.read_text())["env"]["processor"]["reset"]["fixed_reset_joint_positions"]
    )
    assert np.allclose(follower_joints(env), reset_pose, atol=0.2)
    assert transition[TransitionKey.OBSERVATION]["observation.images.front"].shape == (1, 3, 128, 128)

    leader_pose = {"shoulder_pan": 6.0, "shoulder_lift": -90.0, "elbow_flex": 90.0, "wrist_flex": 66.0}
    leader_pose |= {"wrist_roll": 3.0, "gripper": 30.0}
    teleop.set_joint_positions(leader_pose)
    leader = np.array([leader_pose[j] for j in JOINTS])
    policy_action = torch.tensor(reset_pose + np.array([4.0, 3.0, -2.0, 1.0, 0.5, 2.0]), dtype=torch.float32)

    executed, flags = [], []
    for i in range(8):
        if i in (2, 5):  # key press: on at step 2, off at step 5
            teleop.events.toggle_intervention()
        before = follower_joints(env)
        transition = step(env, transition, policy_action, env_processor, action_processor)
        after = follower_joints(env)
        assert np.max(np.abs(after - before)) <= MAX_STEP + 0.2, "follower jumped"
        executed.append(transition[TransitionKey.ACTION].squeeze(0).numpy())
        flags.append(bool(transition[TransitionKey.INFO][TeleopEvents.IS_INTERVENTION]))

    assert flags == [False, False, True, True, True, False, False, False]
    for i in (0, 1, 5, 6, 7):
        assert np.allclose(executed[i], policy_action.numpy(), atol=1e-4)
    for i in (2, 3, 4):
        assert np.allclose(executed[i], leader, atol=0.2)
    # During the intervention the follower tracked the leader; afterwards it went back to the policy.
    assert np.allclose(follower_joints(env), policy_action.numpy(), atol=0.2)
    # The executed (teleop) action is what the actor records as the transition's action.
    assert np.allclose(
        transition[TransitionKey.COMPLEMENTARY_DATA]["teleop_action"].squeeze(0).numpy(), executed[-1]
    )


def test_episode_events_reach_the_transition(joint_env):
    env, teleop, env_processor, action_processor = joint_env
    transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
    hold = torch.tensor(follower_joints(env), dtype=torch.float32)

    transition = step(env, transition, hold, env_processor, action_processor)
    assert not transition[TransitionKey.DONE] and transition[TransitionKey.REWARD] == 0.0

    teleop.events.mark_success()
    transition = step(env, transition, hold, env_processor, action_processor)
    assert transition[TransitionKey.DONE] and transition[TransitionKey.REWARD] == 1.0
    assert transition[TransitionKey.INFO][TeleopEvents.SUCCESS]

    transition = step(env, transition, hold, env_processor, action_processor)
    assert not transition[TransitionKey.DONE], "success is one-shot"

    teleop.events.mark_failure()
    transition = step(env, transition, hold, env_processor, action_processor)
    assert transition[TransitionKey.DONE] and transition[TransitionKey.REWARD] == 0.0

    teleop.events.request_rerecord()
    transition = step(env, transition, hold, env_processor, action_processor)
    assert transition[TransitionKey.DONE] and transition[TransitionKey.INFO][TeleopEvents.RERECORD_EPISODE]


def test_auto_intervention_starts_when_the_leader_is_moved(tmp_path):
    cfg = sim_config(tmp_path)
    cfg.env.teleop.auto_intervention_threshold = 5.0
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    try:
        env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, "cpu")
        transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
        hold = torch.tensor(follower_joints(env), dtype=torch.float32)
        flags = []
        for i in range(4):
            if i == 1:
                teleop.set_joint_positions({"elbow_flex": 3.0})  # below the threshold
            if i == 2:
                teleop.set_joint_positions({"elbow_flex": 9.0})  # beyond it
            transition = step(env, transition, hold, env_processor, action_processor)
            flags.append(bool(transition[TransitionKey.INFO][TeleopEvents.IS_INTERVENTION]))
        assert flags == [False, False, True, True]
    finally:
        teleop.disconnect()
        env.close()


def test_ee_space_intervention_follows_leader_motion_through_lerobot_kinematics(tmp_path):
    cfg = sim_config(tmp_path, control_space="ee")
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    try:
        env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, "cpu")
        home = {"shoulder_pan": 0.0, "shoulder_lift": 0.0, "elbow_flex": 30.0, "wrist_flex": -30.0}
        home |= {"wrist_roll": 0.0, "gripper": 50.0}
        env.reset_pose = [home[j] for j in JOINTS]
        teleop.set_joint_positions(home)
        transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
        kin = teleop._make_kinematics()

        def ee_z(joints):
            return kin.forward_kinematics(np.array([joints[j] for j in JOINTS], dtype=float))[2, 3]

        zero = torch.tensor([0.0, 0.0, 0.0, 1.0])
        transition = step(env, transition, zero, env_processor, action_processor)
        teleop.events.set_intervention(True)
        transition = step(env, transition, zero, env_processor, action_processor)
        z0 = ee_z(env.robot.joint_positions())
        # The operator lifts the leader's wrist: its end effector rises by about 2.3 cm.
        teleop.set_joint_positions({"wrist_flex": -45.0})
        lifted = []
        for _ in range(3):
            transition = step(env, transition, zero, env_processor, action_processor)
            lifted.append(transition[TransitionKey.COMPLEMENTARY_DATA]["teleop_action"].squeeze(0).numpy())
        assert lifted[0][2] > 0.5, "first step: a clear +z delta from the leader"
        assert abs(lifted[-1][2]) < 1e-6, "once caught up, the leader's delta is zero"
        z1 = ee_z(env.robot.joint_positions())
        assert z1 - z0 > 0.01, "the follower's end effector went up with the leader's"
        teleop.events.set_intervention(False)
        joints_before = follower_joints(env)
        transition = step(env, transition, zero, env_processor, action_processor)
        assert not transition[TransitionKey.INFO][TeleopEvents.IS_INTERVENTION]
        assert np.max(np.abs(follower_joints(env) - joints_before)) < 1.0, "no jump when the policy resumes"
    finally:
        teleop.disconnect()
        env.close()


@pytest.mark.slow
def test_recorded_demonstrations_land_in_a_dataset_and_replay(tmp_path):
    from lerobot.datasets import LeRobotDataset

    cfg = sim_config(tmp_path, num_episodes_to_record=2, repo_id="local/so101_sim_demos")
    cfg.env.fps = 20
    stop = threading.Event()
    leaders = []

    # The operator: moves the leader's shoulder back and forth while the recorder runs.
    original_make = gym_manipulator.make_teleoperator_from_config

    def make_and_drive(config):
        device = original_make(config)
        leaders.append(device)

        def operate():
            t = 0
            while not stop.is_set():
                device.set_joint_positions({"shoulder_pan": 20.0 * np.sin(t / 5.0), "elbow_flex": 60.0})
                t += 1
                stop.wait(0.02)

        threading.Thread(target=operate, daemon=True).start()
        return device

    gym_manipulator.make_teleoperator_from_config = make_and_drive
    try:
        record.run(cfg)
    finally:
        stop.set()
        gym_manipulator.make_teleoperator_from_config = original_make
    assert leaders and leaders[0].events.intervention_changes == 1, (
        "the leader was in control while recording"
    )

    dataset = LeRobotDataset("local/so101_sim_demos", root=tmp_path / "dataset")
    assert dataset.num_episodes == 2
    assert dataset.meta.features["action"]["shape"] == (6,)
    assert {"observation.images.front", "observation.images.wrist", "observation.state"} <= set(
        dataset.features
    )
    actions = torch.stack([dataset[i]["action"] for i in range(len(dataset))])
    assert actions[:, 0].std() > 1.0, "the recorded actions follow the moving leader"
    assert torch.allclose(actions[:, 2], torch.full_like(actions[:, 2], 60.0), atol=0.5)
    episode0 = [i for i in range(len(dataset)) if int(dataset[i]["episode_index"]) == 0]
    last_action = dataset[episode0[-1]]["action"].numpy()

    replay_cfg = copy.deepcopy(cfg)
    replay_cfg.mode = "replay"
    replay_cfg.dataset.replay_episode = 0
    sent = []
    original_robot = gym_manipulator.make_robot_from_config

    def make_and_watch(config):
        robot = original_robot(config)
        original_send = robot.send_action

        def send_action(action):
            sent.append({k: float(v) for k, v in action.items()})
            return original_send(action)

        robot.send_action = send_action
        return robot

    gym_manipulator.make_robot_from_config = make_and_watch
    try:
        record.run(replay_cfg)
    finally:
        gym_manipulator.make_robot_from_config = original_robot
    assert len(sent) == len(episode0)
    assert np.allclose([sent[-1][f"{j}.pos"] for j in JOINTS], last_action, atol=1e-3)
