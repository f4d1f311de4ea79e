"""The discrete gripper command of HIL-SERL's end-effector action: which class index does what.

A policy with a gripper outputs one of three class indices as its last action dimension (its
discrete critic picks it). Index 1 always keeps the fingers where they are; which of 0 and 2
closes them depends on the pipeline that consumes the index, and the two this package drives
disagree:

* gym-hil's ``EEActionWrapper`` (the sim) adds ``index - 1`` to the finger actuator command,
  where 255 is closed: 0 opens, 2 closes.
* LeRobot's ``GripperVelocityToJoint`` (``discrete_gripper=True``, the SO101 pipeline) adds
  ``-(index - 1) * clip_max`` to the gripper joint position, which rises as the gripper closes:
  0 closes, 2 opens.

So "open" is not one index: code names the command through the table of the pipeline it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GripperCommandIndices:
    """The class index that opens, keeps or closes the gripper in one action pipeline.

    Attributes:
        open: Index that opens the fingers.
        stay: Index that leaves them where they are.
        close: Index that closes them.
    """

    open: float
    stay: float
    close: float


#: gym-hil's EE action space (``gym_hil/PandaPickCube*``): 0 opens, 2 closes.
GYM_HIL_GRIPPER = GripperCommandIndices(open=0.0, stay=1.0, close=2.0)
#: LeRobot's HIL-SERL EE pipeline on a real arm (SO100/SO101 ``GripperVelocityToJoint``): 0 closes, 2 opens.
LEROBOT_GRIPPER = GripperCommandIndices(open=2.0, stay=1.0, close=0.0)
