"""A scripted operator for the simulated SO101 leader: it picks up the cube of the MuJoCo follower.

A human intervening in HIL-SERL takes over by moving the leader arm and marks success with a key.
:class:`PickCubeTeacher` does both for ``so101_leader_hil_sim`` with ``script="pick_cube"``, when
the follower in the same process runs in MuJoCo (``physics="mujoco"``). It watches the follower's
scene (the cube, the point between the jaws) and moves the *leader's* joints; the follower then
moves through the unchanged pipeline (joint copy, or the leader's end-effector deltas through
LeRobot's IK, bounds, EE-jump check and ``max_relative_target``): above the cube, down, close the
gripper, lift. It is a closed loop on the follower's real position, so servo lag, gravity sag and
IK error are corrected as a hand would correct them.

Per episode: the operator puts the cube back on its start pose, lets the policy drive for
``takeover_step`` steps, then takes the leader (it first puts the leader in the follower's pose,
as a hand grabbing the leader does, with no motion sent) and turns the intervention on. Once the
cube is :data:`LIFT_SUCCESS_M` above the table it reports success once and holds it. An episode
starts when the env resets the follower: LeRobot's reset writes many goal positions in a row,
where an env step writes one (:meth:`PickCubeTeacher.step` counts them), or at the first step.

The leader's kinematics are the MJCF's (the site ``gripperframe`` is the URDF's
``gripper_frame_link``): each step moves the leader's end effector by at most one end-effector
step, so LeRobot's per-step clip and its 5 cm EE-jump stop are never reached.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from .config_simulated import SCRIPTS  # noqa: F401  (the allowed scripts, defined with the config)
from .mujoco_arm import MujocoArm

#: Arm joints moved by the teacher, in bus order (the gripper is commanded separately).
ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
#: Leader gripper positions (0-100). In ``ee`` mode the leader's gripper is a discrete command:
#: above ``gripper_high_threshold`` (60) the follower's jaw opens, below ``gripper_low_threshold``
#: (40) it closes, between them it stays. The teacher opens until the follower's jaw is at
#: :data:`LEADER_GRIP_HALF_OPEN` (fully open, the jaw would hit the table), then holds it there; in
#: ``joint`` mode the follower's gripper goes to the same value directly.
LEADER_GRIP_OPENING = 70.0
LEADER_GRIP_HALF_OPEN = 50.0
LEADER_GRIP_CLOSED = 0.0
#: Follower jaw opening (0-100) the teacher opens to.
OPEN_JAW = 65.0
#: Grasp-point heights above the cube's start centre (metres): hover, grasp (at the centre: the
#: gripper is tilted, so the moving jaw's pad sits higher, and must stay below the cube's top), lifted.
HOVER_M = 0.07
GRASP_M = 0.0
LIFT_M = 0.075
#: Grasp point's shift from the cube's centre toward the fixed jaw (metres, horizontally): the fixed
#: jaw clears the cube's face on the way down, the closing jaw pushes the cube against it.
FIXED_JAW_CLEARANCE_M = 0.015
#: Cube rise above its start height that counts as lifted (success).
LIFT_SUCCESS_M = 0.03
#: Jaw angle (rad) at which the two fingertip pads are parallel (the grasp point is between them).
GRASP_JAW_ANGLE = 0.46
#: Fraction of the remaining error commanded per step.
GAIN = 0.8
#: Share of the motion still in flight that remains so one step later (the follower lags its
#: command: LeRobot's ``max_relative_target`` and the servos). The error the teacher acts on is the
#: cube's distance minus what is in flight, so it does not wind up while the follower catches up.
IN_FLIGHT_DECAY = 0.6
#: Speed near the cube, as a fraction of one end-effector step.
CAREFUL = 0.5
#: Position error (metres) at which a move is done.
TOLERANCE_M = 0.006
#: Position error (metres) at which the jaws are low enough to close (pads below the cube's top).
GRASP_TOLERANCE_M = 0.003
#: Steps the gripper gets to close before lifting.
CLOSE_STEPS = 12
#: Longest stay in a moving phase (steps), so a blocked move cannot stall the episode.
PHASE_TIMEOUT = 60
#: Damping of the leader's least-squares inverse kinematics (metres).
DAMPING = 0.01
#: Newton iterations that put the leader's end effector where it should go (to 0.5 mm).
IK_ITERATIONS = 10


class Phase(enum.Enum):
    """What the teacher is doing."""

    WAIT = "wait"
    HOVER = "hover"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    HOLD = "hold"


@dataclass
class TeacherCommand:
    """What the leader does in one step.

    Attributes:
        intervention: Whether the teacher drives (the intervention flag to report).
        joints: Leader positions to put the leader at (degrees; gripper 0-100), or None to leave it.
        realign: The leader was just put in the follower's pose: its motion reference starts over.
        success: Report success now (once per episode).
    """

    intervention: bool
    joints: dict[str, float] | None = None
    realign: bool = False
    success: bool = False


def clip_step(error: np.ndarray, limits: np.ndarray, gain: float = GAIN) -> np.ndarray:
    """``gain * error`` clipped per axis to ``limits`` (the move commanded this step)."""
    return np.clip(gain * np.asarray(error, dtype=float), -limits, limits)


def damped_least_squares(jacobian: np.ndarray, motion: np.ndarray, damping: float = DAMPING) -> np.ndarray:
    """Joint change that moves a point by ``motion`` (metres) given its position Jacobian (3 x n)."""
    jj = jacobian @ jacobian.T + damping**2 * np.eye(jacobian.shape[0])
    return jacobian.T @ np.linalg.solve(jj, motion)


@dataclass
class _Episode:
    phase: Phase = Phase.WAIT
    steps: int = 0
    phase_steps: int = 0
    cube_start: np.ndarray = field(default_factory=lambda: np.zeros(3))
    grasp_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))
    succeeded: bool = False


class PickCubeTeacher:
    """Drives the simulated leader so that the MuJoCo follower picks up the cube.

    Args:
        arm: The follower's physics (:func:`.mujoco_arm.live_arm`).
        step_sizes: Metres per end-effector step, keys ``x``, ``y``, ``z`` (the leader's
            ``end_effector_step_sizes``): the largest move per step.
        takeover_step: Steps of each episode the policy drives before the teacher takes over.
    """

    def __init__(self, arm: MujocoArm, step_sizes: dict[str, float], takeover_step: int = 0):
        import mujoco

        self.arm = arm
        self.limits = np.array([float(step_sizes[k]) for k in ("x", "y", "z")])
        self.takeover_step = int(takeover_step)
        self._model = arm.model
        self._scratch = mujoco.MjData(arm.model)
        self._site = arm.model.site("gripperframe").id
        self._cube = arm.model.body("block").id
        self._qpos = {n: int(arm.model.joint(n).qposadr[0]) for n in (*ARM_JOINTS, "gripper")}
        self._dofs = [int(arm.model.joint(n).dofadr[0]) for n in ARM_JOINTS]
        self._ranges = np.array([arm.model.joint(n).range for n in ARM_JOINTS], dtype=float)
        self._offset = self._grasp_offset()
        self._leader: np.ndarray | None = None
        self._in_flight = np.zeros(3)
        self._writes: int | None = None
        self.episode = _Episode()
        self.episodes = 0

    # -- kinematics ---------------------------------------------------------------------------
    def _grasp_offset(self) -> np.ndarray:
        """Midpoint of the fingertip pads at :data:`GRASP_JAW_ANGLE`, in the ``gripperframe`` site frame."""
        import mujoco

        data = self._scratch
        data.qpos[:] = self._model.qpos0
        data.qpos[self._qpos["gripper"]] = GRASP_JAW_ANGLE
        mujoco.mj_kinematics(self._model, data)
        pads = [data.geom_xpos[self._model.geom(n).id] for n in ("fixed_jaw_pad", "moving_jaw_pad")]
        rotation = data.site_xmat[self._site].reshape(3, 3)
        return rotation.T @ (np.mean(pads, axis=0) - data.site_xpos[self._site])

    def _grasp_point(self, data) -> np.ndarray:
        rotation = data.site_xmat[self._site].reshape(3, 3)
        return data.site_xpos[self._site] + rotation @ self._offset

    def _leader_jacobian(self, angles: np.ndarray) -> np.ndarray:
        """Position Jacobian (3 x 5) of the end-effector site for arm joint ``angles`` (rad).

        The site, not the grasp point: in ``ee`` mode the follower's end effector moves as the
        leader's does, with the follower's own wrist orientation.
        """
        import mujoco

        data = self._pose_scratch(angles)
        mujoco.mj_comPos(self._model, data)
        jacp = np.zeros((3, self._model.nv))
        mujoco.mj_jacSite(self._model, data, jacp, None, self._site)
        return jacp[:, self._dofs]

    # -- scene --------------------------------------------------------------------------------
    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Grasp point, cube centre, follower arm angles (rad) and the follower's goal-write count."""
        with self.arm.lock:
            data = self.arm.data
            grasp = self._grasp_point(data).copy()
            cube = data.xpos[self._cube].copy()
            angles = np.array([data.qpos[self._qpos[n]] for n in ARM_JOINTS])
            writes = self.arm.command_counts[ARM_JOINTS[0]]
        return grasp, cube, angles, writes

    def _jaw_axis(self) -> np.ndarray:
        """Direction from the follower's fixed jaw to its moving jaw (the site's z axis), world frame."""
        with self.arm.lock:
            return self.arm.data.site_xmat[self._site].reshape(3, 3)[:, 2].copy()

    # -- control ------------------------------------------------------------------------------
    def _phase_target(self, grasp: np.ndarray, jaw_axis: np.ndarray) -> np.ndarray:
        start = self.episode.cube_start
        horizontal = np.array([jaw_axis[0], jaw_axis[1], 0.0])
        toward_fixed_jaw = -FIXED_JAW_CLEARANCE_M * horizontal / max(float(np.linalg.norm(horizontal)), 1e-6)
        if self.episode.phase is Phase.HOVER:
            return start + toward_fixed_jaw + np.array([0.0, 0.0, HOVER_M])
        if self.episode.phase is Phase.DESCEND:
            return start + toward_fixed_jaw + np.array([0.0, 0.0, GRASP_M])
        if self.episode.phase is Phase.LIFT:
            return np.array([*self.episode.grasp_xy, start[2] + LIFT_M])
        return grasp  # close, hold: stay

    def _next_phase(self, phase: Phase) -> None:
        self.episode.phase = phase
        self.episode.phase_steps = 0

    def _new_episode(self) -> None:
        self.arm.reset_cube()
        self.episode = _Episode(phase=Phase.WAIT)
        self.episodes += 1

    def step(self) -> TeacherCommand:
        """One control step: read the scene, advance the plan, say where the leader goes.

        Returns:
            The leader's new joint positions and the events to report.
        """
        grasp, cube, follower, writes = self._observe()
        # An env step writes one goal per joint; LeRobot's reset writes a trajectory of them.
        if self._writes is None or writes - self._writes > 1:
            self._new_episode()
            grasp, cube, follower, writes = self._observe()  # the cube was put back
        self._writes = writes
        jaw_axis = self._jaw_axis()
        episode = self.episode
        episode.steps += 1
        if episode.phase is Phase.WAIT:
            if episode.steps <= self.takeover_step:
                return TeacherCommand(intervention=False)
            # Take the leader: put it in the follower's pose (no motion reported), then drive.
            episode.cube_start = cube.copy()
            self._leader = follower.copy()
            self._in_flight = np.zeros(3)
            self._next_phase(Phase.HOVER)
            return TeacherCommand(
                intervention=True, joints=self._leader_positions(self._open_command()), realign=True
            )

        episode.phase_steps += 1
        success = False
        lifted = cube[2] - episode.cube_start[2] > LIFT_SUCCESS_M
        if lifted and not episode.succeeded:
            episode.succeeded = success = True
            self._next_phase(Phase.HOLD)
        distance = float(np.linalg.norm(self._phase_target(grasp, jaw_axis) - grasp))
        timed_out = episode.phase_steps > PHASE_TIMEOUT
        done = distance < TOLERANCE_M or timed_out
        if episode.phase is Phase.HOVER and done:
            self._next_phase(Phase.DESCEND)
        elif episode.phase is Phase.DESCEND and (distance < GRASP_TOLERANCE_M or timed_out):
            episode.grasp_xy = grasp[:2].copy()
            self._next_phase(Phase.CLOSE)
        elif episode.phase is Phase.CLOSE and episode.phase_steps > CLOSE_STEPS:
            self._next_phase(Phase.LIFT)
        elif episode.phase is Phase.LIFT and done and not lifted:
            self._next_phase(Phase.HOVER)  # the cube stayed down: open and try again
        target = self._phase_target(grasp, jaw_axis)
        careful = episode.phase in (Phase.DESCEND, Phase.LIFT)
        motion = clip_step(target - grasp - self._in_flight, self.limits * (CAREFUL if careful else 1.0))
        self._in_flight = IN_FLIGHT_DECAY * self._in_flight + self._move_leader(motion)
        closed = episode.phase in (Phase.CLOSE, Phase.LIFT, Phase.HOLD)
        gripper = LEADER_GRIP_CLOSED if closed else self._open_command()
        return TeacherCommand(intervention=True, joints=self._leader_positions(gripper), success=success)

    def _open_command(self) -> float:
        """Leader gripper that opens the follower's jaw to :data:`LEADER_GRIP_HALF_OPEN`, then keeps it."""
        lo, hi = self.arm.ranges["gripper"]
        half_open = self.arm.angle("gripper", lo + OPEN_JAW / 100.0 * (hi - lo))
        with self.arm.lock:
            jaw = float(self.arm.data.qpos[self._qpos["gripper"]])
        return LEADER_GRIP_OPENING if jaw < half_open - 0.05 else LEADER_GRIP_HALF_OPEN

    def _move_leader(self, motion: np.ndarray) -> np.ndarray:
        """Move the leader's end effector by ``motion`` (within joint limits); return the motion made."""
        start = self._site_position(self._leader)
        goal = start + motion
        angles = self._leader
        for _ in range(IK_ITERATIONS):
            error = goal - self._site_position(angles)
            if float(np.linalg.norm(error)) < 5e-4:
                break
            change = damped_least_squares(self._leader_jacobian(angles), error)
            angles = np.clip(angles + change, self._ranges[:, 0], self._ranges[:, 1])
        self._leader = angles
        return self._site_position(angles) - start

    def _site_position(self, angles: np.ndarray) -> np.ndarray:
        return self._pose_scratch(angles).site_xpos[self._site].copy()

    def _pose_scratch(self, angles: np.ndarray):
        """The scratch ``MjData`` with the arm at joint ``angles`` (rad), kinematics computed."""
        import mujoco

        data = self._scratch
        for name, angle in zip(ARM_JOINTS, angles, strict=True):
            data.qpos[self._qpos[name]] = angle
        mujoco.mj_kinematics(self._model, data)
        return data

    def _leader_positions(self, gripper: float) -> dict[str, float]:
        """The leader's arm angles as LeRobot positions (degrees), plus the gripper (0-100)."""
        positions = {n: math.degrees(a) for n, a in zip(ARM_JOINTS, self._leader, strict=True)}
        positions["gripper"] = gripper
        return positions
