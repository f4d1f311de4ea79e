"""What the sim's config, env and teacher share: the task's names, the cube's area, the teacher's settings.

It imports nothing from the package, so :mod:`.config`, :mod:`.env` and :mod:`.teacher` can all
import it without a cycle; :mod:`.config` re-exports its names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

SIM_TASK = "E2HiLPickCube-v0"
SIM_GYM_ID = f"gym_hil/{SIM_TASK}"
TEACHER_MODES = ("scripted", "off", "always")
TEACHER_PROFILES = ("scripted", "human_like")
# Where a cube may be placed: gym-hil's cube sampling area (``_SAMPLING_BOUNDS``), on the table
# and within the arm's reach; the env ends an episode when the cube leaves it by 5 cm.
CUBE_X_RANGE = (0.3, 0.5)
CUBE_Y_RANGE = (-0.15, 0.15)


@dataclass
class TeacherConfig:
    """The scripted teacher's intervention model (see :class:`~.teacher.ScriptedTeacher`)."""

    # "scripted": demos then take-overs; "off": never intervenes; "always": every step is the teacher's
    mode: str = "scripted"
    # The first N episodes are full demonstrations (every step is an intervention)
    demo_episodes: int = 5
    # Take over when the tool tip moved less than stall_distance metres over stall_steps steps
    stall_steps: int = 8
    stall_distance: float = 0.01
    # Take over when the tool tip is drift_distance metres farther from the cube than its best this episode
    drift_distance: float = 0.08
    # Hand back after this many teacher steps (or once the cube is lifted)
    handback_steps: int = 15
    # At most this many take-overs per episode
    max_takeovers_per_episode: int = 3
    # Linear decay of the probability that the teacher watches an episode, over this many episodes
    # after the demonstrations; 0 disables the decay
    decay_episodes: int = 0
    # Floor of that probability once decayed
    min_takeover_probability: float = 0.0
    # Std of Gaussian noise added to the teacher's xyz action (action units, in [-1, 1])
    action_noise_std: float = 0.0
    # Expert geometry, metres
    hover_height: float = 0.06
    xy_tolerance: float = 0.008
    grasp_height: float = 0.005
    # Seed of the teacher's random generator (noise and decay draws); None: unseeded
    seed: int | None = 0
    # "scripted": the noise-free expert and the intervention model above; "human_like": the same
    # expert moved by an imprecise, late, sometimes absent operator (the knobs below)
    profile: str = "scripted"
    # human_like: steps from the moment a take-over is warranted to the take-over, uniform in
    # [min, max]; 2-5 steps = 0.2-0.5 s at 10 Hz, a person's reaction time plus a decision
    reaction_delay_min_steps: int = 2
    reaction_delay_max_steps: int = 5
    # human_like: std of the hand's noise on the xyz command (action units; 0.15 = 4 mm per step)
    motion_noise_std: float = 0.15
    # human_like: AR(1) coefficient of that noise from step to step (a hand drifts; 0 = white noise)
    motion_noise_correlation: float = 0.7
    # human_like: gain on the expert's proportional xyz command; > 1 overshoots a target and corrects back
    overshoot_gain: float = 1.6
    # human_like: a take-over lasts handback_steps plus a uniform draw in [-jitter, +jitter] steps
    # (early or late hand-back), and continues for up to jitter steps after a lift
    handback_jitter_steps: int = 6
    # human_like: probability that a take-over or demonstration pauses above the cube (redundant hovering)
    hover_probability: float = 0.3
    # human_like: steps of that pause (the hand holds still, noise only)
    hover_steps: int = 5
    # human_like: probability that a take-over or demonstration starts with a detour out of the
    # cube's area (up and away from the cube at full speed, as when the operator looks for the arm)
    detour_probability: float = 0.1
    # human_like: steps of that detour (up to 2.5 cm per step)
    detour_steps: int = 4
    # human_like: probability that the operator does not step in at all in an episode (demonstrations excepted)
    absent_probability: float = 0.15

    def __post_init__(self) -> None:
        if self.mode not in TEACHER_MODES:
            raise ConfigError(
                f"teacher.mode={self.mode!r} is invalid; allowed values: {', '.join(map(repr, TEACHER_MODES))}"
            )
        if self.profile not in TEACHER_PROFILES:
            raise ConfigError(
                f"teacher.profile={self.profile!r} is invalid; allowed values: "
                f"{', '.join(map(repr, TEACHER_PROFILES))}"
            )
        for name in ("reaction_delay_min_steps", "handback_jitter_steps", "hover_steps", "detour_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"teacher.{name}={getattr(self, name)} is invalid; allowed values: >= 0")
        if self.reaction_delay_max_steps < self.reaction_delay_min_steps:
            raise ConfigError(
                f"teacher.reaction_delay_max_steps={self.reaction_delay_max_steps} is invalid; allowed "
                f"values: >= reaction_delay_min_steps ({self.reaction_delay_min_steps})"
            )
        for name in ("hover_probability", "detour_probability", "absent_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"teacher.{name}={getattr(self, name)} is invalid; allowed values: [0, 1]")
        if not 0.0 <= self.motion_noise_correlation < 1.0:
            raise ConfigError(
                f"teacher.motion_noise_correlation={self.motion_noise_correlation} is invalid; "
                "allowed values: [0, 1)"
            )
        if self.motion_noise_std < 0:
            raise ConfigError(f"teacher.motion_noise_std={self.motion_noise_std} is invalid; allowed: >= 0")
        if not self.overshoot_gain > 0:
            raise ConfigError(f"teacher.overshoot_gain={self.overshoot_gain} is invalid; allowed values: > 0")
        for name in ("demo_episodes", "decay_episodes", "max_takeovers_per_episode"):
            if getattr(self, name) < 0:
                raise ConfigError(f"teacher.{name}={getattr(self, name)} is invalid; allowed values: >= 0")
        for name in ("stall_steps", "handback_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"teacher.{name}={getattr(self, name)} is invalid; allowed values: >= 1")
        if not 0.0 <= self.min_takeover_probability <= 1.0:
            raise ConfigError(
                f"teacher.min_takeover_probability={self.min_takeover_probability} is invalid; "
                "allowed values: [0, 1]"
            )
        if self.action_noise_std < 0:
            raise ConfigError(f"teacher.action_noise_std={self.action_noise_std} is invalid; allowed: >= 0")
