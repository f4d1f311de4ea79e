"""Each gripper command table matches the pipeline it feeds, and it is the only definition."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gym_hil.wrappers.hil_wrappers import EEActionWrapper
from lerobot.processor import TransitionKey, create_transition
from lerobot.robots.so_follower.robot_kinematic_processor import GripperVelocityToJoint

from lerobot_policy_e2hil.gripper import GYM_HIL_GRIPPER, LEROBOT_GRIPPER

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lerobot_policy_e2hil"


def gym_hil_finger_step(index: float) -> float:
    """What gym-hil adds to the finger actuator command (fraction of 255 = closed) for ``index``."""
    wrapper = SimpleNamespace(_ee_step_size=np.full(3, 0.025), use_gripper=True)
    return float(EEActionWrapper.action(wrapper, np.array([0.0, 0.0, 0.0, index]))[-1])


def lerobot_gripper_target(index: float, current: float = 50.0) -> float:
    """The gripper joint target LeRobot's discrete pipeline sets from ``current`` for ``index``."""
    transition = create_transition(
        observation={"shoulder_pan.pos": 0.0, "gripper.pos": current}, action={"ee.gripper_vel": index}
    )
    out = GripperVelocityToJoint(discrete_gripper=True)(transition)
    return out[TransitionKey.ACTION]["ee.gripper_pos"]


def test_sim_indices_move_gym_hil_fingers_the_named_way():
    # gym-hil's finger actuator command is 0 open, 255 closed.
    assert gym_hil_finger_step(GYM_HIL_GRIPPER.close) > 0
    assert gym_hil_finger_step(GYM_HIL_GRIPPER.open) < 0
    assert gym_hil_finger_step(GYM_HIL_GRIPPER.stay) == 0


def test_so101_indices_move_lerobot_gripper_the_named_way():
    # LeRobot's SO100/SO101 gripper joint position rises as the gripper closes.
    assert lerobot_gripper_target(LEROBOT_GRIPPER.close) > 50.0
    assert lerobot_gripper_target(LEROBOT_GRIPPER.open) < 50.0
    assert lerobot_gripper_target(LEROBOT_GRIPPER.stay) == pytest.approx(50.0)


def test_no_other_module_defines_gripper_command_constants():
    defined = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "gripper.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            defined += [f"{path.relative_to(PACKAGE)}:{n}" for n in names if n.startswith("GRIPPER_")]
    assert defined == []
