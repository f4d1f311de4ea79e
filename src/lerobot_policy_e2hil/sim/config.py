"""``--env.type=e2hil_sim``: gym_hil's pick-cube task, headless, with a scripted teacher.

:class:`E2HiLSimEnvConfig` is a ``gym_manipulator`` (``HILSerlRobotEnvConfig``) whose ``name`` is
``"gym_hil"``, so LeRobot's actor builds it with ``gym_manipulator.make_robot_env`` and the gym_hil
processor pipeline, unchanged. That function calls ``gym.make(f"gym_hil/{task}", image_obs=True,
render_mode="human", ...)``; the task id is the only hook, so the processes that build the env
register the gym id ``gym_hil/E2HiLPickCube-v0`` with the config's options (state or cameras, cube
randomisation, reset delay, teacher) through :func:`.env.register_gym_id`; building the config
registers nothing. The entry point ignores the forced ``image_obs`` and ``render_mode``.
``create_envs`` makes the same env, teacher-free, for ``lerobot-eval``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig, GripperConfig, HILSerlProcessorConfig, HILSerlRobotEnvConfig
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_IMAGES, OBS_STATE

from ..errors import ConfigError
from .task import (
    CUBE_X_RANGE,
    CUBE_Y_RANGE,
    SIM_GYM_ID,
    SIM_TASK,
    TEACHER_MODES,
    TEACHER_PROFILES,
    TeacherConfig,
)

REWARDS = ("lift", "touch")
# The config's public names, the shared ones from .task included
__all__ = [
    "CUBE_X_RANGE",
    "CUBE_Y_RANGE",
    "REWARDS",
    "SIM_GYM_ID",
    "SIM_TASK",
    "TEACHER_MODES",
    "TEACHER_PROFILES",
    "E2HiLSimEnvConfig",
    "LaunchConfig",
    "TeacherConfig",
    "sim_features",
    "policy_reads_cameras",
    "resolve_image_obs",
    "validate_cube_position",
]


@dataclass
class LaunchConfig:
    """Settings of the one-command launcher (``python -m lerobot_policy_e2hil.launcher.train``)."""

    # Teacher-free evaluation episodes of the final policy (0 skips it)
    eval_episodes: int = 50
    # Success and intervention rates in the summary are over the last N training episodes
    summary_window: int = 50
    # Seconds between two progress lines
    progress_interval_s: float = 15.0
    # Warn when rolling success (summary_window episodes) falls by more than this from its best (0-1)
    collapse_drop: float = 0.3
    # Warn when teacher-free success is more than this (0-1) below the last summary_window training episodes' success
    teacher_gap: float = 0.3
    # Seconds to wait for each process to exit after the stop signal before it is killed
    stop_timeout_s: float = 120.0
    # Sim actors on the one learner, each with env seed env_seed + k and policy.online_steps / N env steps
    num_actors: int = 1

    def __post_init__(self) -> None:
        if self.num_actors < 1:
            raise ConfigError(f"env.launch.num_actors={self.num_actors} is invalid; allowed values: >= 1")
        if not 0.0 < self.collapse_drop <= 1.0:
            raise ConfigError(
                f"env.launch.collapse_drop={self.collapse_drop} is invalid; allowed values: a fraction in (0, 1]"
            )
        if not 0.0 < self.teacher_gap <= 1.0:
            raise ConfigError(
                f"env.launch.teacher_gap={self.teacher_gap} is invalid; allowed values: a fraction in (0, 1]"
            )


def _default_processor() -> HILSerlProcessorConfig:
    return HILSerlProcessorConfig(control_mode="scripted_teacher", gripper=GripperConfig(use_gripper=True))


@EnvConfig.register_subclass("e2hil_sim")
@dataclass
class E2HiLSimEnvConfig(HILSerlRobotEnvConfig):
    """Headless gym_hil pick-cube, state-only by default, driven by a scripted teacher."""

    # The gym id (registered as gym_hil/E2HiLPickCube-v0 with this config's options); the only value
    task: str | None = SIM_TASK
    # LeRobot's env family: "gym_hil" makes the actor build the env with gym_hil's processor pipeline
    name: str = "gym_hil"
    # gym-hil's control rate (10 Hz); checkpoints record it as the dataset fps
    fps: int = 10
    # Pace the actor to ``fps`` (and keep gym-hil's reset sleep) as on a robot; False: as fast as possible
    realtime: bool = False
    # Cap the actor at this many env steps per second (None: no cap); raises the learner's
    # updates per env step when the learner is the bottleneck. Ignored when realtime is set
    actor_max_hz: float | None = None
    # Learner updates per env step, held by both processes (launcher/lockstep.py: the learner caps its
    # updates, the actor waits at episode ends); None: each runs at its own speed, so load sets it
    updates_per_env_step: float | None = None
    # Seconds the actor waits at an episode end for the learner to catch up before going on
    lockstep_timeout_s: float = 60.0
    # True: front and wrist 128x128 cameras plus robot state (GPU); False: robot state + cube position;
    # null: what the policy of --policy.path reads (cameras if its input features have images), else False
    image_obs: bool | None = None
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
        from lerobot.configs import parser

        self.image_obs = resolve_image_obs(self.image_obs, parser.get_path_arg("policy"))
        self.features = sim_features(self.image_obs)
        self.features_map = {key: policy_key for key, (policy_key, _) in _FEATURE_TABLE.items()}

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

        from .env import make_sim_env, register_gym_id

        register_gym_id(self)
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


def policy_reads_cameras(policy_path: str | None) -> bool | None:
    """Whether the policy saved at ``policy_path`` has camera inputs; None without a local policy there.

    Args:
        policy_path: A ``pretrained_model`` folder (``--policy.path``), a hub id or None.
    """
    config = Path(policy_path) / "config.json" if policy_path else None
    if config is None or not config.is_file():
        return None
    features = json.loads(config.read_text()).get("input_features") or {}
    return any(key.startswith(f"{OBS_IMAGES}.") for key in features)


def resolve_image_obs(image_obs: bool | None, policy_path: str | None) -> bool:
    """``env.image_obs`` made to agree with the policy being evaluated (``lerobot-eval --policy.path``).

    Unset, it follows the policy's input features (a checkpoint trained on the cameras gets the
    cameras without a flag); set, it must match them.

    Args:
        image_obs: The parsed ``env.image_obs`` (None: not given).
        policy_path: The ``--policy.path`` of the command line, or None.

    Raises:
        ConfigError: If ``image_obs`` is set and contradicts the policy's inputs.
    """
    cameras = policy_reads_cameras(policy_path)
    if image_obs is None:
        return bool(cameras)
    if cameras is not None and cameras != image_obs:
        reads = "the two cameras" if cameras else "state and cube position, no cameras"
        raise ConfigError(
            f"env.image_obs={str(image_obs).lower()} contradicts the policy at {policy_path}, which reads "
            f"{reads}; allowed values: {str(cameras).lower()}, or leave env.image_obs unset to follow the policy"
        )
    return bool(image_obs)


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
