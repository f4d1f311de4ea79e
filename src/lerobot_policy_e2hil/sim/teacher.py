"""A scripted human teacher for gym_hil's pick-cube task.

The teacher is a gym-hil ``InputController``: it drives gym-hil's own
``InputsControlWrapper`` exactly like a keyboard or gamepad would, so the wrapper writes
``info["is_intervention"]`` and ``info["teleop_action"]`` and LeRobot's actor records them
unchanged. Two parts:

* :func:`expert_action` -- a state-feedback controller (reach above the cube, descend,
  close, lift) that is stateless, so it can take over in the middle of any episode;
* :class:`ScriptedTeacher` -- the intervention model: full demonstrations for the first
  episodes, take-over when the policy stalls or drifts, hand-back after a number of steps,
  an optional decay of take-overs over training and optional action noise.

``TeacherConfig.profile = "human_like"`` puts an imperfect operator between the two (see
:class:`TeacherConfig` for every knob): a reaction delay between the moment a take-over is
warranted and the take-over, correlated hand noise and overshoot on the expert's command,
take-overs that end early or late, pauses above the cube, detours out of the cube's area at
the start of a take-over, and episodes in which the operator does not step in. The default
``"scripted"`` profile is the noise-free teacher, unchanged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from gym_hil.wrappers.hil_wrappers import InputsControlWrapper
from gym_hil.wrappers.intervention_utils import InputController

from ..gripper import GYM_HIL_GRIPPER
from .task import CUBE_X_RANGE, CUBE_Y_RANGE, TeacherConfig

# ``InputsControlWrapper.get_gamepad_action`` maps the controller's "open" to 2.0 and "close" to
# 0.0, i.e. its names are the reverse of what the fingers do. The teacher asks for a physical
# motion and this table names the controller command that produces it.
_COMMAND_FOR_GRIPPER = {
    GYM_HIL_GRIPPER.close: "open",
    GYM_HIL_GRIPPER.open: "close",
    GYM_HIL_GRIPPER.stay: "no-op",
}

EE_STEP_M = 0.025  # gym-hil's EE wrapper scales actions in [-1, 1] by 2.5 cm per step
# Centre of the cube's area; a human-like detour heads away from it
_WORKSPACE_CENTRE = np.array([sum(CUBE_X_RANGE) / 2, sum(CUBE_Y_RANGE) / 2])
# Half-angle of the spread of a detour's direction around "away from the centre"
_DETOUR_SPREAD = np.pi / 3


@dataclass
class ExpertGains:
    """Geometry of the scripted pick; distances in metres.

    The first three come from :class:`TeacherConfig`, which holds their defaults.
    """

    hover_height: float
    xy_tolerance: float
    grasp_height: float
    z_tolerance: float = 0.008
    grasp_distance: float = 0.03


def expert_action(
    tcp: np.ndarray, block: np.ndarray, block_rest_z: float, gripper_closed: bool, gains: ExpertGains
) -> np.ndarray:
    """One step of the pick expert, from the current state only.

    Args:
        tcp: Pinch-site position (x, y, z).
        block: Cube centre position (x, y, z).
        block_rest_z: Height of the cube centre when it rests on the table.
        gripper_closed: Whether the finger actuator command is past half-closed.
        gains: Geometry of the motion.

    Returns:
        ``[dx, dy, dz, gripper]`` in gym-hil's EE action space (xyz in [-1, 1], gripper in {0, 1, 2}).
    """
    to_block = block - tcp
    xy_error = float(np.linalg.norm(to_block[:2]))
    holding = gripper_closed and float(np.linalg.norm(to_block)) < gains.grasp_distance
    if holding:
        return _towards(tcp, np.array([block[0], block[1], tcp[2] + EE_STEP_M]), GYM_HIL_GRIPPER.stay)
    if gripper_closed:
        # Closed on nothing (or lost the cube): open and back off upwards.
        return np.array([0.0, 0.0, 1.0, GYM_HIL_GRIPPER.open])
    grasp_z = block_rest_z + gains.grasp_height
    if xy_error > gains.xy_tolerance:
        # Reach above the cube; rise first when low so the fingers do not sweep it away.
        z_target = block_rest_z + gains.hover_height
        if xy_error > 3 * gains.xy_tolerance or tcp[2] > z_target:
            return _towards(tcp, np.array([block[0], block[1], z_target]), GYM_HIL_GRIPPER.stay)
        return _towards(tcp, np.array([block[0], block[1], tcp[2]]), GYM_HIL_GRIPPER.stay)
    if tcp[2] - grasp_z > gains.z_tolerance:
        return _towards(tcp, np.array([block[0], block[1], grasp_z]), GYM_HIL_GRIPPER.stay)
    return np.array([0.0, 0.0, 0.0, GYM_HIL_GRIPPER.close])


def pinch_and_cube(env: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pinch-site and cube-centre positions (x, y, z) of the unwrapped pick-cube env."""
    tcp = np.asarray(env.data.sensor("2f85/pinch_pos").data, dtype=np.float64).copy()
    block = np.asarray(env.data.sensor("block_pos").data, dtype=np.float64).copy()
    return tcp, block


def gripper_closed(env: Any) -> bool:
    """Whether the unwrapped pick-cube env's finger actuator command is past half-closed."""
    return float(env.get_gripper_pose()[0]) / 255.0 > 0.5


def _towards(tcp: np.ndarray, target: np.ndarray, gripper: float) -> np.ndarray:
    delta = np.clip((target - tcp) / EE_STEP_M, -1.0, 1.0)
    return np.array([*delta, gripper])


class ScriptedTeacher(InputController):
    """A gym-hil input controller whose "person" is the scripted expert plus an intervention model.

    Bind it to the unwrapped ``PandaPickCubeGymEnv`` (:meth:`bind`); the wrapper then calls
    :meth:`update` once per step and reads :meth:`get_deltas`, :meth:`should_intervene` and
    :meth:`gripper_command`, as it does for a keyboard. :meth:`reset` starts a new episode.

    Args:
        config: Intervention model and noise settings.
        seed: Seed of the teacher's own random generator (noise, decay draws).
    """

    def __init__(self, config: TeacherConfig, seed: int | None = None):
        super().__init__(x_step_size=1.0, y_step_size=1.0, z_step_size=1.0)
        self.config = config
        self.gains = ExpertGains(
            hover_height=config.hover_height,
            xy_tolerance=config.xy_tolerance,
            grasp_height=config.grasp_height,
        )
        self.rng = np.random.default_rng(seed)
        self.env: Any = None
        self.episode = -1
        self._action = np.array([0.0, 0.0, 0.0, GYM_HIL_GRIPPER.stay])
        self._tcp_history: deque[np.ndarray] = deque(maxlen=max(2, config.stall_steps + 1))
        self._best_distance = np.inf
        self._intervention_steps = 0
        self._takeovers = 0
        self._attentive = True
        self.total_takeovers = 0
        # human_like state: correlated hand noise, pending take-over delay, the current
        # take-over's length and lift hold, and the hover and detour steps left in this segment
        self._noise = np.zeros(3)
        self._pending: int | None = None
        self._takeover_length = config.handback_steps
        self._lift_hold = 0
        self._after_lift = 0
        self._hover_left = 0
        self._detour_left = 0
        self._detour_spread = 0.0
        self._detour_direction: np.ndarray | None = None

    def bind(self, env: Any) -> None:
        """Attach the unwrapped gym-hil env whose state the teacher reads."""
        self.env = env

    # --- InputController interface -------------------------------------------------------

    def reset(self) -> None:
        """Start a new episode: decide whether the teacher watches it, clear the detectors."""
        self.episode += 1
        self.intervention_flag = self.is_demo_episode()
        self._intervention_steps = 0
        self._takeovers = 0
        self._tcp_history.clear()
        self._best_distance = np.inf
        self._attentive = bool(self.rng.random() < self.takeover_probability())
        if self.human_like:
            absent = bool(self.rng.random() < self.config.absent_probability)
            self._attentive = self._attentive and not absent
            self._pending = None
            self._noise[:] = 0.0
            self._hover_left = self._detour_left = 0
            if self.config.mode == "always" or self.intervention_flag:
                self._start_segment()

    @property
    def human_like(self) -> bool:
        """Whether the operator is the ``"human_like"`` profile."""
        return self.config.profile == "human_like"

    def update(self) -> None:
        """Read the env state, compute the expert action and the intervention decision."""
        if self.env is None:
            raise RuntimeError("ScriptedTeacher.bind(env) must be called before the first step")
        tcp, block = pinch_and_cube(self.env)
        closed = gripper_closed(self.env)
        if self.human_like:
            # Decide first: a take-over that starts now starts its hover and detour draws now.
            self.intervention_flag = self._decide_human(tcp, block)
            action = self._human_action(tcp, block, closed)
        else:
            action = expert_action(tcp, block, self._block_rest_z(), closed, self.gains)
        if self.config.action_noise_std > 0:
            action[:3] = np.clip(
                action[:3] + self.rng.normal(0.0, self.config.action_noise_std, size=3), -1.0, 1.0
            )
        self._action = action
        if not self.human_like:
            self.intervention_flag = self._decide(tcp, block)
        self.open_gripper_command = _COMMAND_FOR_GRIPPER[float(action[3])] == "open"
        self.close_gripper_command = _COMMAND_FOR_GRIPPER[float(action[3])] == "close"

    def get_deltas(self) -> tuple[float, float, float]:
        """The expert's xyz motion, in [-1, 1] per axis."""
        return float(self._action[0]), float(self._action[1]), float(self._action[2])

    # --- intervention model ---------------------------------------------------------------

    def is_demo_episode(self) -> bool:
        """Whether the current episode is one of the first ``demo_episodes`` full demonstrations."""
        return self.config.mode != "off" and 0 <= self.episode < self.config.demo_episodes

    def takeover_probability(self) -> float:
        """Probability that the teacher watches (and may take over in) the current episode."""
        cfg = self.config
        if cfg.mode == "off":
            return 0.0
        if cfg.mode == "always":
            return 1.0
        if cfg.decay_episodes <= 0:
            return 1.0
        progress = max(0, self.episode - cfg.demo_episodes) / cfg.decay_episodes
        return float(max(cfg.min_takeover_probability, 1.0 - progress))

    def _decide(self, tcp: np.ndarray, block: np.ndarray) -> bool:
        forced = self._forced()
        if forced is not None:
            return forced
        distance = self._observe(tcp, block)
        if self.intervention_flag:
            self._intervention_steps += 1
            if self._intervention_steps >= self.config.handback_steps or self._lifted(block):
                self._hand_back()
                return False
            return True
        if not self._warranted(distance, block):
            return False
        self._takeovers += 1
        self.total_takeovers += 1
        self._intervention_steps = 0
        return True

    def _forced(self) -> bool | None:
        """The decision when the mode or a demonstration episode fixes it, else None."""
        if self.config.mode == "off":
            return False
        if self.config.mode == "always" or self.is_demo_episode():
            return True
        return None

    def _observe(self, tcp: np.ndarray, block: np.ndarray) -> float:
        """Record the step for the stall and drift detectors; returns the tool-cube distance."""
        self._tcp_history.append(tcp.copy())
        distance = float(np.linalg.norm(block - tcp))
        self._best_distance = min(self._best_distance, distance)
        return distance

    def _warranted(self, distance: float, block: np.ndarray) -> bool:
        """Whether an attentive teacher with take-overs left sees a stall or a drift now."""
        cfg = self.config
        if not self._attentive or self._takeovers >= cfg.max_takeovers_per_episode:
            return False
        stalled = len(self._tcp_history) > cfg.stall_steps and (
            float(np.linalg.norm(self._tcp_history[-1] - self._tcp_history[0])) < cfg.stall_distance
        )
        drifted = distance - self._best_distance > cfg.drift_distance
        return (stalled and not self._lifted(block)) or drifted

    # --- human-like operator ----------------------------------------------------------------

    def _start_segment(self) -> None:
        """Draw the length, hover and detour of a take-over (or of a teacher-driven episode)."""
        cfg = self.config
        jitter = cfg.handback_jitter_steps
        self._takeover_length = max(1, cfg.handback_steps + int(self.rng.integers(-jitter, jitter + 1)))
        self._lift_hold = int(self.rng.integers(0, jitter + 1))
        self._after_lift = 0
        self._hover_left = cfg.hover_steps if self.rng.random() < cfg.hover_probability else 0
        self._detour_left = cfg.detour_steps if self.rng.random() < cfg.detour_probability else 0
        # drawn now, turned into a direction at the detour's first step (at a reset the arm is not placed yet)
        self._detour_spread = float(self.rng.uniform(-_DETOUR_SPREAD, _DETOUR_SPREAD))
        self._detour_direction = None

    def _human_action(self, tcp: np.ndarray, block: np.ndarray, closed: bool) -> np.ndarray:
        """The expert's action as the operator executes it: detour, hover, overshoot, hand noise."""
        cfg = self.config
        action = expert_action(tcp, block, self._block_rest_z(), closed, self.gains)
        if self._detour_left > 0:
            self._detour_left -= 1
            if self._detour_direction is None:
                away = tcp[:2] - _WORKSPACE_CENTRE
                angle = float(np.arctan2(away[1], away[0])) if np.linalg.norm(away) > 1e-6 else 0.0
                angle += self._detour_spread
                self._detour_direction = np.array([np.cos(angle), np.sin(angle), 0.5])
            action = np.array([*self._detour_direction, GYM_HIL_GRIPPER.stay])
        elif self._hover_left > 0 and (
            self._hover_left < self.config.hover_steps or self._above_cube(tcp, block, closed)
        ):
            # the pause starts above the cube and then lasts its hover_steps
            self._hover_left -= 1
            action = np.array([0.0, 0.0, 0.0, GYM_HIL_GRIPPER.stay])
        else:
            action[:3] = action[:3] * cfg.overshoot_gain
        rho = cfg.motion_noise_correlation
        innovation = self.rng.normal(0.0, cfg.motion_noise_std, size=3)
        self._noise = rho * self._noise + np.sqrt(1.0 - rho * rho) * innovation
        action[:3] = np.clip(action[:3] + self._noise, -1.0, 1.0)
        return action

    def _above_cube(self, tcp: np.ndarray, block: np.ndarray, closed: bool) -> bool:
        """Gripper open, over the cube and not yet at grasp height: where a person hesitates."""
        xy_error = float(np.linalg.norm(block[:2] - tcp[:2]))
        grasp_z = self._block_rest_z() + self.gains.grasp_height
        return not closed and xy_error <= 2 * self.gains.xy_tolerance and tcp[2] - grasp_z > 0.02

    def _decide_human(self, tcp: np.ndarray, block: np.ndarray) -> bool:
        """:meth:`_decide` with a reaction delay, a drawn take-over length and a lift hold."""
        cfg = self.config
        forced = self._forced()
        if forced is not None:
            return forced
        distance = self._observe(tcp, block)
        if self.intervention_flag:
            self._intervention_steps += 1
            if self._lifted(block):
                self._after_lift += 1
            if self._intervention_steps >= self._takeover_length or self._after_lift > self._lift_hold:
                self._hand_back()
                return False
            return True
        if self._pending is not None:
            self._pending -= 1
            if self._pending > 0:
                return False
            self._pending = None
            return self._take_over()
        if not self._warranted(distance, block):
            return False
        delay = int(self.rng.integers(cfg.reaction_delay_min_steps, cfg.reaction_delay_max_steps + 1))
        if delay == 0:
            return self._take_over()
        self._pending = delay
        return False

    def _take_over(self) -> bool:
        self._takeovers += 1
        self.total_takeovers += 1
        self._intervention_steps = 0
        self._start_segment()
        return True

    def _hand_back(self) -> None:
        self._intervention_steps = 0
        self._tcp_history.clear()
        self._best_distance = np.inf

    def _lifted(self, block: np.ndarray) -> bool:
        return float(block[2]) - self._block_rest_z() > 0.03

    def _block_rest_z(self) -> float:
        return float(self.env.model.geom("block").size[2])


class TeacherControlWrapper(InputsControlWrapper):
    """gym-hil's ``InputsControlWrapper`` driven by a :class:`ScriptedTeacher` instead of a device.

    Only the constructor differs: it installs the teacher rather than opening a keyboard or a
    gamepad (which need a display). ``step`` and ``reset`` are gym-hil's, so the teacher's
    actions reach LeRobot through the same ``info`` keys as a person's.

    Args:
        env: The EE-action env (gym-hil's ``EEActionWrapper`` or above).
        teacher: The scripted teacher; bound here to ``env.unwrapped``.
        use_gripper: Whether the action has a gripper component.
    """

    def __init__(self, env: Any, teacher: ScriptedTeacher, use_gripper: bool = True):
        super(InputsControlWrapper, self).__init__(env)
        self.controller = teacher
        self.auto_reset = False
        self.use_gripper = use_gripper
        self.input_threshold = 0.001
        teacher.bind(env.unwrapped)
        self.controller.start()
