"""``--env.type=e2hil_sim``: gym_hil's pick-cube task, headless, with a scripted teacher.

:class:`E2HiLSimEnvConfig` is a ``gym_manipulator`` (``HILSerlRobotEnvConfig``) whose ``name`` is
``"gym_hil"``, so LeRobot's actor builds it with ``gym_manipulator.make_robot_env`` and the gym_hil
processor pipeline, unchanged. That function calls ``gym.make(f"gym_hil/{task}", image_obs=True,
render_mode="human", ...)``; the task id is the only hook, so the config registers the gym id
``gym_hil/E2HiLPickCube-v0`` with its own options (state or cameras, cube randomisation, reset
delay, teacher) when it is constructed. The entry point ignores the forced ``image_obs`` and
``render_mode``. ``create_envs`` makes the same env, teacher-free, for ``lerobot-eval``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig, GripperConfig, HILSerlProcessorConfig, HILSerlRobotEnvConfig
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_IMAGES, OBS_STATE

from ..errors import ConfigError

SIM_TASK = "E2HiLPickCube-v0"
SIM_GYM_ID = f"gym_hil/{SIM_TASK}"
TEACHER_MODES = ("scripted", "off", "always")
TEACHER_PROFILES = ("scripted", "human_like")
REWARDS = ("lift", "touch")
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


@dataclass
class LaunchConfig:
    """Settings of the one-command launcher (``python -m lerobot_policy_e2hil.sim.train``)."""

    # Teacher-free evaluation episodes of the final policy (0 skips it)
    eval_episodes: int = 50
    # Success and intervention rates in the summary are over the last N training episodes
    summary_window: int = 50
    # Seconds between two progress lines
    progress_interval_s: float = 15.0
    # Warn when rolling success (summary_window episodes) falls by more than this from its best (0-1)
    collapse_drop: float = 0.3
    # Seconds to wait for each process to exit after the stop signal before it is killed
    stop_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0.0 < self.collapse_drop <= 1.0:
            raise ConfigError(
                f"env.launch.collapse_drop={self.collapse_drop} is invalid; allowed: a fraction in (0, 1]"
            )


def _default_processor() -> HILSerlProcessorConfig:
    return HILSerlProcessorConfig(control_mode="scripted_teacher", gripper=GripperConfig(use_gripper=True))


@EnvConfig.register_subclass("e2hil_sim")
@dataclass
class E2HiLSimEnvConfig(HILSerlRobotEnvConfig):
    """Headless gym_hil pick-cube, state-only by default, driven by a scripted teacher."""

    task: str | None = SIM_TASK
    name: str = "gym_hil"
    # gym-hil's control rate (10 Hz); checkpoints record it as the dataset fps
    fps: int = 10
    # Pace the actor to ``fps`` (and keep gym-hil's reset sleep) as on a robot; False: as fast as possible
    realtime: bool = False
    # Cap the actor at this many env steps per second (None: no cap); raises the learner's
    # updates per env step when the learner is the bottleneck. Ignored when realtime is set
    actor_max_hz: float | None = None
    # Learner updates per env step, held by both processes (sim/lockstep.py: the learner caps its
    # updates, the actor waits at episode ends); None: each runs at its own speed, so load sets it
    updates_per_env_step: float | None = None
    # Seconds the actor waits at an episode end for the learner to catch up before going on
    lockstep_timeout_s: float = 60.0
    # True: front and wrist 128x128 cameras plus robot state (GPU); False: robot state + cube position
    image_obs: bool = False
    # Sample the cube in x 0.3-0.5 m, y -0.15-0.15 m at every reset; False: always at (0.5, 0)
    random_block_position: bool = False
    # Cube positions [[x, y], ...] in metres (x in 0.3-0.5, y in -0.15-0.15), one drawn uniformly
    # per episode; replaces random_block_position when not empty. Empty: as random_block_position
    cube_positions: list[list[float]] = field(default_factory=list)
    # Success (reward 1, episode ends): "lift" = cube 0.1 m above its rest height (gym-hil's);
    # "touch" = a finger of the gripper touches the cube (the paper's Touch-Cube)
    reward: str = "lift"
    # Seconds gym-hil sleeps at every reset (only when realtime; it sleeps 1 s by default)
    reset_delay_seconds: float = 1.0
    # Episode length limit in env steps (gym-hil: 100 at 10 Hz)
    max_episode_steps: int = 100
    # Seed of the MuJoCo env
    env_seed: int = 0
    # True: our buffered evaluation of gym-hil's operational-space controller (same torques, ~2x
    # faster env steps); False: gym-hil's own ``opspace`` function
    fast_controller: bool = True
    processor: HILSerlProcessorConfig = field(default_factory=_default_processor)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)

    def __post_init__(self) -> None:
        if self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps={self.max_episode_steps} is invalid; allowed values: >= 1")
        if self.actor_max_hz is not None and not self.actor_max_hz > 0:
            raise ConfigError(f"actor_max_hz={self.actor_max_hz} is invalid; allowed values: > 0 or null")
        if self.updates_per_env_step is not None and not self.updates_per_env_step > 0:
            raise ConfigError(
                f"env.updates_per_env_step={self.updates_per_env_step} is invalid; allowed values: > 0 or null"
            )
        if not self.lockstep_timeout_s > 0:
            raise ConfigError(
                f"env.lockstep_timeout_s={self.lockstep_timeout_s} is invalid; allowed values: > 0"
            )
        if self.task != SIM_TASK:
            raise ConfigError(
                f"env.task={self.task!r} is invalid for e2hil_sim; allowed values: {SIM_TASK!r}"
            )
        if self.reward not in REWARDS:
            raise ConfigError(
                f"env.reward={self.reward!r} is invalid; allowed values: {', '.join(map(repr, REWARDS))}"
            )
        self.cube_positions = [validate_cube_position(i, p) for i, p in enumerate(self.cube_positions)]
        self.features = sim_features(self.image_obs)
        self.features_map = {key: policy_key for key, (policy_key, _) in _FEATURE_TABLE.items()}
        from .env import register_sim_env

        register_sim_env(self.sim_options(teacher=True))

    @property
    def use_gripper(self) -> bool:
        """Whether the action has the discrete gripper component."""
        return self.processor.gripper.use_gripper if self.processor.gripper is not None else True

    @property
    def gripper_penalty(self) -> float:
        """Reward added when the gripper switches state (gym-hil's ``discrete_penalty``)."""
        return self.processor.gripper.gripper_penalty if self.processor.gripper is not None else 0.0

    def sim_options(self, teacher: bool) -> dict[str, Any]:
        """The keyword arguments of :func:`~.env.make_sim_env` for this config.

        Args:
            teacher: Whether to attach the scripted teacher (False for evaluation).
        """
        return {
            "image_obs": self.image_obs,
            "random_block_position": self.random_block_position,
            "cube_positions": [list(p) for p in self.cube_positions],
            "reward": self.reward,
            "reset_delay_seconds": self.reset_delay_seconds if self.realtime else 0.0,
            "max_episode_steps": self.max_episode_steps,
            "seed": self.env_seed,
            "fast_controller": self.fast_controller,
            "use_gripper": self.use_gripper,
            "gripper_penalty": self.gripper_penalty,
            "teacher": dataclasses.asdict(self.teacher) if teacher else None,
        }

    @property
    def gym_kwargs(self) -> dict:
        return {"sim_options": self.sim_options(teacher=False)}

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict[str, dict[int, Any]]:
        """Teacher-free vector env for ``lerobot-eval`` (``info["is_success"]`` is set)."""
        import gymnasium as gym

        from .env import make_sim_env

        options = self.sim_options(teacher=False)
        seeds = [self.env_seed + i for i in range(n_envs)]

        def factory(seed: int):
            return lambda: make_sim_env(sim_options={**options, "seed": seed})

        env_cls = gym.vector.AsyncVectorEnv if (use_async_envs and n_envs > 1) else gym.vector.SyncVectorEnv
        kwargs: dict[str, Any] = {"context": "forkserver"} if env_cls is gym.vector.AsyncVectorEnv else {}
        vec = env_cls(
            [factory(s) for s in seeds], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, **kwargs
        )
        return {self.type: {0: vec}}


def validate_cube_position(index: int, position: Any) -> list[float]:
    """``position`` as ``[x, y]`` floats, or a ConfigError naming ``env.cube_positions[index]``.

    Args:
        index: Position of the entry in ``env.cube_positions``.
        position: The entry as parsed (a list or tuple of two numbers).
    """
    allowed = (
        f"[x, y] in metres with x in [{CUBE_X_RANGE[0]}, {CUBE_X_RANGE[1]}] and y in "
        f"[{CUBE_Y_RANGE[0]}, {CUBE_Y_RANGE[1]}] (gym-hil's cube area on the table)"
    )
    try:
        x, y = (float(v) for v in position)
    except (TypeError, ValueError):
        raise ConfigError(
            f"env.cube_positions[{index}]={position!r} is invalid; allowed values: {allowed}"
        ) from None
    inside = CUBE_X_RANGE[0] <= x <= CUBE_X_RANGE[1] and CUBE_Y_RANGE[0] <= y <= CUBE_Y_RANGE[1]
    if not inside:
        raise ConfigError(f"env.cube_positions[{index}]={[x, y]} is invalid; allowed values: {allowed}")
    return [x, y]


# gym key -> (policy key, type)
_FEATURE_TABLE: dict[str, tuple[str, FeatureType]] = {
    ACTION: (ACTION, FeatureType.ACTION),
    "agent_pos": (OBS_STATE, FeatureType.STATE),
    "environment_state": (OBS_ENV_STATE, FeatureType.ENV),
    "pixels/front": (f"{OBS_IMAGES}.front", FeatureType.VISUAL),
    "pixels/wrist": (f"{OBS_IMAGES}.wrist", FeatureType.VISUAL),
}


def sim_features(image_obs: bool) -> dict[str, PolicyFeature]:
    """Env features (gym keys) of the sim: state + cube position, or state + two cameras.

    The action feature is the 3-D continuous part; the gripper is the policy's discrete action.
    """
    features = {
        ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(3,)),
        "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(18,)),
    }
    if image_obs:
        for camera in ("front", "wrist"):
            features[f"pixels/{camera}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(128, 128, 3))
    else:
        features["environment_state"] = PolicyFeature(type=FeatureType.ENV, shape=(3,))
    return features
