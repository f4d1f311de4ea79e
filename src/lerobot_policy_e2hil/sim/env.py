"""Construction of the headless pick-cube env from gym-hil's own parts.

The stack, inside out, is gym-hil's: ``PandaPickCubeGymEnv`` -> :class:`TaskVariant` (only for listed
cube positions or the touch reward) -> ``GripperPenaltyWrapper`` ->
``EEActionWrapper`` -> intervention wrapper (:class:`~.teacher.TeacherControlWrapper`, gym-hil's
``InputsControlWrapper`` driven by the scripted teacher) -> ``ResetDelayWrapper`` (only with a
non-zero delay) -> gymnasium's ``TimeLimit`` -> :class:`SuccessInfo` -> :class:`VideoFrame`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .task import SIM_GYM_ID

ENTRY_POINT = f"{__name__}:make_sim_env"
# info key with the index (into env.cube_positions) of the episode's cube position
POSITION_INFO_KEY = "cube_position_index"
# Bodies of the 2F-85 gripper whose collision geoms count as its fingers for the touch reward
FINGER_BODIES = ("left_pad", "right_pad", "left_follower", "right_follower")


class TaskVariant(gym.Wrapper):
    """Listed cube positions and the touch reward, around gym-hil's raw pick-cube env.

    With ``cube_positions``, every reset moves the cube to one of them, drawn uniformly with
    numpy's global generator (as gym-hil draws its random positions, so a seed fixes both), and
    every ``info`` carries its index under :data:`POSITION_INFO_KEY`. With ``reward="touch"``,
    the reward is 1 and the episode ends (``info["succeed"]``) at the first step whose final
    physics state has a contact between the cube and a finger geom (:data:`FINGER_BODIES`).

    Setting :attr:`cycle` (evaluation) places the cube at the listed positions in turn instead,
    from the first one again after :meth:`restart_cycle`, so every position gets its share.

    Args:
        env: gym-hil's ``PandaPickCubeGymEnv`` (unwrapped).
        cube_positions: ``[[x, y], ...]`` in metres; empty keeps gym-hil's placement.
        reward: ``"lift"`` (gym-hil's) or ``"touch"``.
    """

    def __init__(self, env: gym.Env, cube_positions: list[list[float]], reward: str):
        super().__init__(env)
        self.cube_positions = [tuple(float(v) for v in p) for p in cube_positions]
        self.reward_kind = reward
        self.position_index: int | None = None
        self.cycle = False
        self._cycle_next = 0
        model = env.unwrapped.model
        fingers = {model.body(name).id for name in FINGER_BODIES}
        self._finger_geoms = frozenset(
            g
            for g in range(model.ngeom)
            if model.geom_bodyid[g] in fingers and (model.geom_contype[g] or model.geom_conaffinity[g])
        )
        self._block_geom = model.geom("block").id

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if self.cube_positions:
            import mujoco

            raw = self.env.unwrapped
            if self.cycle:
                self.position_index = self._cycle_next % len(self.cube_positions)
                self._cycle_next += 1
            else:
                self.position_index = int(np.random.randint(len(self.cube_positions)))
            x, y = self.cube_positions[self.position_index]
            raw.data.jnt("block").qpos[:3] = (x, y, raw.model.geom("block").size[2])
            raw.data.jnt("block").qvel[:] = 0.0
            mujoco.mj_forward(raw.model, raw.data)
            obs = raw._compute_observation()
            info = {**info, POSITION_INFO_KEY: self.position_index}
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.reward_kind == "touch":
            touched = self.fingers_touch_cube()
            reward, info["succeed"] = float(touched), touched
            terminated = bool(terminated or touched)
        if self.position_index is not None:
            info[POSITION_INFO_KEY] = self.position_index
        return obs, reward, terminated, truncated, info

    def restart_cycle(self) -> None:
        """The next reset (with :attr:`cycle`) uses the first position."""
        self._cycle_next = 0

    def fingers_touch_cube(self) -> bool:
        """Whether the current MuJoCo state has a contact between a finger geom and the cube."""
        data = self.env.unwrapped.data
        for contact in data.contact[: data.ncon]:
            pair = (int(contact.geom1), int(contact.geom2))
            if self._block_geom in pair and (pair[0] in self._finger_geoms or pair[1] in self._finger_geoms):
                return True
        return False


class SuccessInfo(gym.Wrapper):
    """Copy gym-hil's ``info["succeed"]`` to ``info["is_success"]``, the key ``lerobot-eval`` reads."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["is_success"] = bool(info.get("succeed", False))
        return obs, reward, terminated, truncated, info


class VideoFrame(gym.Wrapper):
    """``render()`` returns one ``(H, W, 3)`` frame of the front camera, the shape video writers take.

    gym-hil's ``render()`` returns a list with one frame per camera, which ``lerobot-eval``'s video
    writer rejects, and renders with shadows and reflections, which under software rendering costs
    about five times as much. This renders the front camera alone, with its own renderer (the
    observation images are unchanged), shadows and reflections off.

    Args:
        env: The wrapped env (gym-hil's pick-cube env inside).
        height: Frame height in pixels.
        width: Frame width in pixels.
    """

    def __init__(self, env: gym.Env, height: int = 128, width: int = 128):
        super().__init__(env)
        self._size = (height, width)
        self._renderer = None

    def render(self):
        import mujoco

        raw = self.env.unwrapped
        if self._renderer is None:
            self._renderer = mujoco.Renderer(raw.model, height=self._size[0], width=self._size[1])
        self._renderer.update_scene(raw.data, camera=raw.camera_id[0])
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render().copy()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


def make_sim_env(sim_options: dict[str, Any] | None = None, **ignored: Any) -> gym.Env:
    """Build the pick-cube env described by ``sim_options``.

    Args:
        sim_options: Output of ``E2HiLSimEnvConfig.sim_options`` (defaults: state-only, fixed cube,
            no teacher, no reset delay, the fast controller of :mod:`.opspace`).
        **ignored: What LeRobot's ``make_robot_env`` passes (``image_obs=True``, ``render_mode="human"``,
            ``use_gripper``, ``gripper_penalty``); the config's values in ``sim_options`` win.

    Returns:
        The wrapped env; its action is ``[dx, dy, dz, gripper]`` with the gripper in {0, 1, 2}.
    """
    from gym_hil.envs.panda_pick_gym_env import PandaPickCubeGymEnv
    from gym_hil.wrappers.hil_wrappers import (
        DEFAULT_EE_STEP_SIZE,
        EEActionWrapper,
        GripperPenaltyWrapper,
        ResetDelayWrapper,
    )

    options = {
        "image_obs": False,
        "random_block_position": False,
        "cube_positions": [],
        "reward": "lift",
        "reset_delay_seconds": 0.0,
        "max_episode_steps": 100,
        "seed": 0,
        "fast_controller": True,
        "use_gripper": True,
        "gripper_penalty": 0.0,
        "teacher": None,
        **(sim_options or {}),
    }
    if options["fast_controller"]:
        from .opspace import fast_control_env_class

        env_class = fast_control_env_class()
    else:
        env_class = PandaPickCubeGymEnv
    env: gym.Env = env_class(
        seed=int(options["seed"]),
        render_mode="rgb_array",
        image_obs=bool(options["image_obs"]),
        random_block_position=bool(options["random_block_position"]),
    )
    if options["cube_positions"] or options["reward"] != "lift":
        env = TaskVariant(env, options["cube_positions"], options["reward"])
    if options["use_gripper"]:
        env = GripperPenaltyWrapper(env, penalty=float(options["gripper_penalty"]))
    env = EEActionWrapper(env, ee_action_step_size=DEFAULT_EE_STEP_SIZE, use_gripper=True)
    if options["teacher"] is not None:
        from .task import TeacherConfig
        from .teacher import ScriptedTeacher, TeacherControlWrapper

        teacher_cfg = TeacherConfig(**options["teacher"])
        teacher = ScriptedTeacher(teacher_cfg, seed=teacher_cfg.seed)
        env = TeacherControlWrapper(env, teacher, use_gripper=bool(options["use_gripper"]))
    if options["reset_delay_seconds"] > 0:
        env = ResetDelayWrapper(env, delay_seconds=float(options["reset_delay_seconds"]))
    env = gym.wrappers.TimeLimit(env, max_episode_steps=int(options["max_episode_steps"]))
    return VideoFrame(SuccessInfo(env))


def register_sim_env(sim_options: dict[str, Any]) -> None:
    """Register ``gym_hil/E2HiLPickCube-v0`` so that ``gym.make`` builds it with ``sim_options``.

    Idempotent: a registration with the same options is kept as it is; other options replace it.
    """
    spec = gym.registry.get(SIM_GYM_ID)
    if spec is not None and spec.entry_point == ENTRY_POINT and spec.kwargs == {"sim_options": sim_options}:
        return
    gym.registry.pop(SIM_GYM_ID, None)
    gym.register(
        id=SIM_GYM_ID,
        entry_point=ENTRY_POINT,
        kwargs={"sim_options": sim_options},
        disable_env_checker=True,
    )


def register_gym_id(env_cfg: Any) -> bool:
    """Register the sim's gym id with ``env_cfg``'s options (with the teacher) if it is an ``e2hil_sim`` config.

    LeRobot's ``make_robot_env`` builds the env with ``gym.make(f"gym_hil/{task}")``, so every
    process that builds it that way registers first, once its config is final: the sim actor and
    ``e2hil-actor`` after parsing, the benchmark trainer before ``make_robot_env``, ``create_envs``
    (``lerobot-eval``). Building a config registers nothing. Idempotent (:func:`register_sim_env`).

    Args:
        env_cfg: Any env config; only an ``e2hil_sim`` one (it has ``sim_options``) is registered.

    Returns:
        Whether ``env_cfg`` is an ``e2hil_sim`` config (and the id is now registered with its options).
    """
    sim_options = getattr(env_cfg, "sim_options", None)
    if not callable(sim_options):
        return False
    register_sim_env(sim_options(teacher=True))
    return True


def find_task_variant(env: gym.Env) -> TaskVariant | None:
    """The :class:`TaskVariant` inside ``env``'s wrapper stack, or None."""
    current = env
    while current is not None:
        if isinstance(current, TaskVariant):
            return current
        current = getattr(current, "env", None)
    return None


def find_teacher(env: gym.Env) -> Any:
    """The :class:`~.teacher.ScriptedTeacher` inside ``env``'s wrapper stack, or None."""
    from .teacher import TeacherControlWrapper

    current = env
    while True:
        if isinstance(current, TeacherControlWrapper):
            return current.controller
        if not hasattr(current, "env"):
            return None
        current = current.env
