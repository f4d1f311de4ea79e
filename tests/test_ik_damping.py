"""LeRobot's end-effector action pipeline on the SO101 URDF: the IK stays on one branch.

The steps are LeRobot's own, built as ``gym_manipulator.make_processors`` builds them for the
shipped SO101 configs (reference = forward kinematics of the previous IK solution, one IK solve per
step from that solution, the 5 cm EE-jump check). No servo and no physics: each step's joints are
the previous IK solution, as on an arm that tracks it, so a jump here is the IK's alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lerobot.model.kinematics import RobotKinematics
from lerobot.processor import TransitionKey
from lerobot.processor.converters import create_transition
from lerobot.robots.so_follower.robot_kinematic_processor import (
    EEBoundsAndSafety,
    EEReferenceAndDelta,
    GripperVelocityToJoint,
    InverseKinematicsRLStep,
)

from lerobot_policy_e2hil.lerobot_layer import fixes as lerobot_fixes
from lerobot_policy_e2hil.lerobot_layer import patches
from lerobot_policy_e2hil.so101.urdf import packaged_urdf

pytestmark = pytest.mark.filterwarnings("ignore")

CONFIG = Path(__file__).parents[1] / "HIL-SERL" / "train_config_e2hil_so101.json"
MOTORS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
STEPS = 300


def _shipped() -> dict:
    env = json.loads(CONFIG.read_text())["env"]
    ik = env["processor"]["inverse_kinematics"]
    return {
        "bounds": ik["end_effector_bounds"],
        "step_sizes": ik["end_effector_step_sizes"],
        "reset": env["processor"]["reset"]["fixed_reset_joint_positions"],
    }


def _pipeline(kinematics: RobotKinematics, shipped: dict) -> list:
    return [
        EEReferenceAndDelta(
            kinematics=kinematics,
            end_effector_step_sizes=shipped["step_sizes"],
            motor_names=MOTORS,
            use_latched_reference=False,
            use_ik_solution=True,
        ),
        EEBoundsAndSafety(end_effector_bounds=shipped["bounds"]),
        GripperVelocityToJoint(clip_max=100.0, speed_factor=1.0, discrete_gripper=True),
        InverseKinematicsRLStep(
            kinematics=kinematics, motor_names=MOTORS, initial_guess_current_joints=False
        ),
    ]


def _kinematics() -> RobotKinematics:
    return RobotKinematics(str(packaged_urdf()), "gripper_frame_link", MOTORS)


@pytest.fixture(scope="module")
def damped() -> RobotKinematics:
    """LeRobot's kinematics as the plugin's processes build it (placo loads the URDF in ~4 s)."""
    return _kinematics()


@pytest.fixture(scope="module")
def undamped() -> RobotKinematics:
    """LeRobot's kinematics as LeRobot alone builds it."""
    with patches.isolated_hooks():
        patches.unhook(lerobot_fixes.KINEMATICS_INIT, "fixes")
        return _kinematics()


def _drive(kinematics: RobotKinematics, actions: np.ndarray) -> tuple[int | None, float]:
    """Run the pipeline on ``actions`` (steps x 3, in [-1, 1]): (step of the safety stop or None, widest EE step)."""
    shipped = _shipped()
    steps = _pipeline(kinematics, shipped)
    observation = {f"{name}.pos": float(v) for name, v in zip(MOTORS, shipped["reset"], strict=True)}
    complementary: dict = {}
    widest, last = 0.0, None
    for t, (x, y, z) in enumerate(actions):
        action = {"enabled": True, "target_x": x, "target_y": y, "target_z": z}
        action |= {"target_wx": 0.0, "target_wy": 0.0, "target_wz": 0.0, "gripper_vel": 1.0}
        transition = create_transition(
            observation=observation, action=action, complementary_data=complementary
        )
        try:
            for step in steps:
                transition = step(transition)
        except ValueError as error:
            assert "EE jump" in str(error)
            return t, widest
        complementary = transition[TransitionKey.COMPLEMENTARY_DATA]
        pose = kinematics.forward_kinematics(np.asarray(complementary["IK_solution"], dtype=float))[:3, 3]
        widest = widest if last is None else max(widest, float(np.linalg.norm(pose - last)))
        last = pose
    return None, widest


def _random(seed: int) -> np.ndarray:
    """An untrained policy: each action uniform in [-1, 1]^3."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (STEPS, 3))


def _pushing(seed: int) -> np.ndarray:
    """A policy that pushes: saturated actions that hold for ~20 steps, into the bounds' edges and corners."""
    rng = np.random.default_rng(seed)
    actions, current = [], np.sign(rng.uniform(-1.0, 1.0, 3))
    for _ in range(STEPS):
        if rng.random() < 0.05:
            current = np.sign(rng.uniform(-1.0, 1.0, 3))
        actions.append(current)
    return np.array(actions)


def test_the_hook_adds_one_damping_task_to_every_kinematics_solver(damped, undamped):
    assert patches.hooked(lerobot_fixes.KINEMATICS_INIT, "fixes") is lerobot_fixes.damped_solver
    assert damped.solver.tasks_count() == undamped.solver.tasks_count() + 1


@pytest.mark.parametrize("seed", range(4))
def test_an_untrained_policy_never_trips_the_ee_jump_stop_with_the_shipped_config(damped, seed):
    stopped, widest = _drive(damped, _random(seed))
    assert stopped is None, f"EE-jump stop at step {stopped}"
    assert widest < 0.05


@pytest.mark.parametrize("seed", range(4))
def test_a_pushing_policy_moves_the_end_effector_continuously(damped, seed):
    # A target clipped at an unreachable face of the bounds can still lag (a rare 5-6 cm stop on
    # such a policy); the IK branch flip (about 0.2 m) is what the damping removes.
    _, widest = _drive(damped, _pushing(seed))
    assert widest < 0.08


def test_without_the_damping_the_same_pipeline_flips_and_stops(undamped):
    outcomes = [_drive(undamped, _pushing(seed)) for seed in range(3)]
    assert all(stopped is not None for stopped, _ in outcomes), outcomes
