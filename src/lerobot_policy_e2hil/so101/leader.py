"""The SO101 leader arm as a HIL-SERL intervention device.

LeRobot's ``SOLeader`` reads the leader's joints but has no ``get_teleop_events()`` (LeRobot issue
2952), so its HIL-SERL processors (``AddTeleopEventsAsInfoStep``) refuse it. :class:`SO101LeaderHIL`
adds the events (keys, optional automatic intervention on leader motion) and returns its action in
the format the HIL-SERL env pipeline consumes:

* ``control_space="joint"``: a float32 array of the six leader joint positions, which
  ``InterventionActionProcessorStep`` passes through unchanged and ``RobotEnv.step`` sends to the
  follower's joints (same kinematics, joint-to-joint).
* ``control_space="ee"``: LeRobot's end-effector delta dict ``{delta_x, delta_y, delta_z, gripper}``.
  Deltas follow the *motion* of the leader's end effector (forward kinematics of its joints), so
  the follower moves the way the leader moves, starting from wherever it is: no jump when an
  intervention starts. Motion larger than one step's clip carries over to the next steps.

When the intervention ends the policy's action is executed again. In ``ee`` mode the policy's
action is a delta from the follower's current pose, so control resumes where the human left the
arm; in ``joint`` mode the follower's ``max_relative_target`` bounds the first policy step.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from lerobot.teleoperators.so_leader.so_leader import SOLeader
from lerobot.teleoperators.utils import TeleopEvents

from ..gripper import LEROBOT_GRIPPER
from .config_leader import SO101LeaderHILConfig
from .events import KeyboardEventListener, TeleopEventState

logger = logging.getLogger(__name__)


class SO101LeaderHIL(SOLeader):
    """SO101 leader with HIL-SERL teleop events (``--teleop.type=so101_leader_hil``).

    Args:
        config: The teleoperator config.
    """

    config_class = SO101LeaderHILConfig
    # Same calibration folder as LeRobot's SO leader, so `lerobot-calibrate --teleop.type=so101_leader`
    # files are found for the same id.
    name = "so_leader"

    def __init__(self, config: SO101LeaderHILConfig):
        super().__init__(config)
        self.config = config
        self.events = TeleopEventState()
        if config.start_in_intervention:
            self.events.set_intervention(True)
        self.keyboard = KeyboardEventListener(self.events, config.key_bindings)
        self._rest_pose: np.ndarray | None = None
        self._kinematics = None
        self._ee_reference: np.ndarray | None = None
        self.last_joint_positions: np.ndarray | None = None

    @property
    def motor_names(self) -> list[str]:
        """Joint names in bus order."""
        return list(self.bus.motors)

    @property
    def action_features(self) -> dict:
        """Action description in the configured format."""
        if self.config.action_format == "robot":
            return super().action_features
        if self.config.control_space == "joint":
            names = [f"{m}.pos" for m in self.motor_names]
            return {"dtype": "float32", "shape": (len(names),), "names": names}
        names = ["delta_x", "delta_y", "delta_z"] + (["gripper"] if self.config.use_gripper else [])
        return {"dtype": "float32", "shape": (len(names),), "names": {n: i for i, n in enumerate(names)}}

    def connect(self, calibrate: bool = True) -> None:
        """Connect the bus (and calibrate like LeRobot's SO leader), then start the event keys.

        Args:
            calibrate: Run LeRobot's interactive calibration if the motors and file disagree.
        """
        self.config.require_port()
        super().connect(calibrate=calibrate)
        if self.config.control_space == "ee":
            self._kinematics = self._make_kinematics()
        if self.config.use_keyboard:
            try:
                self.keyboard.start()
            except Exception:
                self.bus.disconnect(disable_torque=False)
                raise
        keys = ", ".join(f"'{k}' = {a}" for k, a in self.config.key_bindings.items())
        logger.info("SO101 leader ready (%s space). Keys: %s", self.config.control_space, keys)

    def _make_kinematics(self):
        from lerobot.model import RobotKinematics

        return RobotKinematics(
            urdf_path=self.config.urdf_path,
            target_frame_name=self.config.target_frame_name,
            joint_names=self.motor_names,
        )

    def read_joints(self) -> np.ndarray:
        """Read the leader's joint positions (degrees; gripper 0-100) in bus order."""
        positions = super().get_action()
        joints = np.array([positions[f"{m}.pos"] for m in self.motor_names], dtype=np.float32)
        self.last_joint_positions = joints
        return joints

    def _update_auto_intervention(self, joints: np.ndarray) -> None:
        threshold = self.config.auto_intervention_threshold
        if threshold is None:
            return
        if self.events.is_intervention:
            self._rest_pose = None
            return
        if self._rest_pose is None:
            self._rest_pose = joints.copy()
            return
        if float(np.max(np.abs(joints - self._rest_pose))) > threshold:
            logger.info("Leader moved more than %.1f deg: intervention starts", threshold)
            self.events.set_intervention(True)
            self._rest_pose = None

    def get_action(self) -> Any:
        """Read the leader and return the intervention action in the configured format.

        Returns:
            ``action_format="robot"``: ``{"<motor>.pos": value}``. ``"hil"`` + ``"joint"``: float32
            array of the joint positions. ``"hil"`` + ``"ee"``: ``{delta_x, delta_y, delta_z[, gripper]}``.
        """
        joints = self.read_joints()
        self._update_auto_intervention(joints)
        if self.config.action_format == "robot":
            return {f"{m}.pos": float(v) for m, v in zip(self.motor_names, joints, strict=True)}
        if self.config.control_space == "joint":
            return joints
        return self._ee_delta(joints)

    def _ee_delta(self, joints: np.ndarray) -> dict[str, float]:
        if self._kinematics is None:
            self._kinematics = self._make_kinematics()
        position = np.asarray(self._kinematics.forward_kinematics(joints.astype(float))[:3, 3], dtype=float)
        steps = np.array([self.config.end_effector_step_sizes[k] for k in ("x", "y", "z")], dtype=float)
        if not self.events.is_intervention or self._ee_reference is None:
            # Outside interventions the leader's motion is not accumulated: the next intervention
            # starts from zero delta wherever both arms are.
            self._ee_reference = position
            delta = np.zeros(3)
        else:
            delta = np.clip((position - self._ee_reference) / steps, -1.0, 1.0)
            self._ee_reference = self._ee_reference + delta * steps
        action = {"delta_x": float(delta[0]), "delta_y": float(delta[1]), "delta_z": float(delta[2])}
        if self.config.use_gripper:
            gripper = float(joints[self.motor_names.index("gripper")])
            if gripper > self.config.gripper_high_threshold:
                action["gripper"] = LEROBOT_GRIPPER.close
            elif gripper < self.config.gripper_low_threshold:
                action["gripper"] = LEROBOT_GRIPPER.open
            else:
                action["gripper"] = LEROBOT_GRIPPER.stay
        return action

    def get_teleop_events(self) -> dict[TeleopEvents, Any]:
        """HIL-SERL events for this control step (see :meth:`TeleopEventState.snapshot`)."""
        return self.events.snapshot()

    def disconnect(self) -> None:
        """Stop the key listener and disconnect the bus."""
        self.keyboard.stop()
        super().disconnect()
