"""Teacher-free evaluation of a checkpoint in the sim, with the actor's own inference path."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SetupError, one_line
from ..rollout import evaluate, make_act, mean_action, success_rate

__all__ = ["check_can_render", "evaluate_checkpoint", "load_checkpoint", "mean_action", "teacher_free_env"]


def teacher_free_env(env_cfg: Any, device: str, seed: int | None = None) -> tuple[Any, Any, Any]:
    """The run's sim env with the teacher switched off, and LeRobot's processors for it.

    The teacher's wrapper stays in the stack with ``mode="off"`` (it never intervenes), so the
    env, its info keys and the processors are those the actor trains on.

    Args:
        env_cfg: The run's :class:`~.config.E2HiLSimEnvConfig`.
        device: Torch device of the processed observations.
        seed: Seed of the MuJoCo env (None: the config's ``env_seed``).

    Returns:
        ``(env, env_processor, action_processor)``.
    """
    from lerobot.rl.gym_manipulator import make_processors

    from .env import make_sim_env

    options = env_cfg.sim_options(teacher=True)
    options["teacher"] = {**asdict(env_cfg.teacher), "mode": "off"}
    if seed is not None:
        options["seed"] = seed
    env = make_sim_env(options)
    return (env, *make_processors(env, None, env_cfg, device))


def check_can_render(env_cfg: Any) -> None:
    """Build and reset the evaluation's env once, so a run that could not evaluate fails before it trains.

    gym_hil makes a MuJoCo renderer when it builds the env, so an OpenGL backend that cannot
    load here (no display for GLFW, no Mesa for EGL) fails at once, not after training.

    Args:
        env_cfg: The run's :class:`~.config.E2HiLSimEnvConfig`.

    Raises:
        SetupError: The env could not be built or rendered; the message names ``MUJOCO_GL``.
    """
    with warnings.catch_warnings(record=True) as caught:  # GLFW warns its cause ("DISPLAY ... is missing")
        warnings.simplefilter("always")
        try:
            env, _, _ = teacher_free_env(env_cfg, "cpu")
            try:
                env.reset()
            finally:
                env.close()
        except Exception as err:
            causes = [one_line(w.message) for w in caught if "GLFW" in type(w.message).__name__]
            backend = os.environ.get("MUJOCO_GL") or "unset"
            raise SetupError(
                f"the sim cannot render in this process (MUJOCO_GL={backend}: {type(err).__name__}: "
                f"{'; '.join([*causes[:1], one_line(err)])}), so its teacher-free evaluation would fail "
                "after training. Install Mesa's EGL (`make mesa`) and unset MUJOCO_GL or set "
                "MUJOCO_GL=egl; glfw and glx need a display"
            ) from None


def load_checkpoint(pretrained_model: Path, env_cfg: Any) -> tuple[Any, Any, Any, Any]:
    """A saved policy and its processors, as LeRobot's ``lerobot-eval`` loads them.

    Args:
        pretrained_model: A checkpoint's ``pretrained_model`` directory (the learner's layout:
            ``config.json``, ``model.safetensors`` and the pre/post-processor files).
        env_cfg: The run's :class:`~.config.E2HiLSimEnvConfig`.

    Returns:
        ``(policy, preprocessor, postprocessor, policy_config)``, the policy in eval mode.
    """
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies import make_policy, make_pre_post_processors

    policy_cfg = PreTrainedConfig.from_pretrained(pretrained_model)
    policy_cfg.pretrained_path = str(pretrained_model)
    policy = make_policy(cfg=policy_cfg, env_cfg=env_cfg).eval()
    preprocessor, postprocessor = make_pre_post_processors(policy_cfg, pretrained_path=str(pretrained_model))
    return policy, preprocessor, postprocessor, policy_cfg


def evaluate_checkpoint(
    pretrained_model: Path, env_cfg: Any, episodes: int, seed: int = 10_000, deterministic: bool = False
) -> float:
    """Success fraction of ``pretrained_model`` over ``episodes`` teacher-free episodes.

    The policy acts as in LeRobot's actor (sampled, :func:`~..rollout.select_action`), or with
    :func:`~..rollout.mean_action`; the episodes are :func:`~..rollout.evaluate`'s, on
    :func:`teacher_free_env`. With a fixed cube and ``deterministic`` every episode is the same.

    Args:
        pretrained_model: A checkpoint's ``pretrained_model`` directory.
        env_cfg: The run's :class:`~.config.E2HiLSimEnvConfig`.
        episodes: Number of episodes.
        seed: Seed of the MuJoCo env, of the cube positions (numpy's global generator, which
            gym-hil uses) and of torch's generator (the sampled actions).
        deterministic: Act with the mode of the policy instead of a sample.

    Returns:
        Successful episodes / episodes.
    """
    policy, preprocessor, postprocessor, policy_cfg = load_checkpoint(pretrained_model, env_cfg)
    act = make_act(policy, preprocessor, postprocessor, policy_cfg.input_features, deterministic)
    env, env_processor, action_processor = teacher_free_env(env_cfg, str(policy_cfg.device), seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        return success_rate(evaluate(env, env_processor, action_processor, act, episodes))
    finally:
        env.close()
