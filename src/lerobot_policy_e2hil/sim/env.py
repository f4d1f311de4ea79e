"""Construction of the headless pick-cube env from gym-hil's own parts.

The stack, inside out, is gym-hil's: ``PandaPickCubeGymEnv`` -> ``GripperPenaltyWrapper`` ->
``EEActionWrapper`` -> intervention wrapper (:class:`~.teacher.TeacherControlWrapper`, gym-hil's
``InputsControlWrapper`` driven by the scripted teacher) -> ``ResetDelayWrapper`` (only with a
non-zero delay) -> gymnasium's ``TimeLimit`` -> :class:`SuccessInfo`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .config import SIM_GYM_ID

ENTRY_POINT = f"{__name__}:make_sim_env"


class SuccessInfo(gym.Wrapper):
    """Copy gym-hil's ``info["succeed"]`` to ``info["is_success"]``, the key ``lerobot-eval`` reads."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["is_success"] = bool(info.get("succeed", False))
        return obs, reward, terminated, truncated, info


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
    if options["use_gripper"]:
        env = GripperPenaltyWrapper(env, penalty=float(options["gripper_penalty"]))
    env = EEActionWrapper(env, ee_action_step_size=DEFAULT_EE_STEP_SIZE, use_gripper=True)
    if options["teacher"] is not None:
        from .config import TeacherConfig
        from .teacher import ScriptedTeacher, TeacherControlWrapper

        teacher_cfg = TeacherConfig(**options["teacher"])
        teacher = ScriptedTeacher(teacher_cfg, seed=teacher_cfg.seed)
        env = TeacherControlWrapper(env, teacher, use_gripper=bool(options["use_gripper"]))
    if options["reset_delay_seconds"] > 0:
        env = ResetDelayWrapper(env, delay_seconds=float(options["reset_delay_seconds"]))
    env = gym.wrappers.TimeLimit(env, max_episode_steps=int(options["max_episode_steps"]))
    return SuccessInfo(env)


def register_sim_env(sim_options: dict[str, Any]) -> None:
    """(Re-)register ``gym_hil/E2HiLPickCube-v0`` so that ``gym.make`` builds it with ``sim_options``.

    Registration is per process: every process that parses an ``e2hil_sim`` config (LeRobot's
    actor, learner, ``lerobot-eval``) registers its own options.
    """
    gym.registry.pop(SIM_GYM_ID, None)
    gym.register(
        id=SIM_GYM_ID,
        entry_point=ENTRY_POINT,
        kwargs={"sim_options": sim_options},
        disable_env_checker=True,
    )


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
