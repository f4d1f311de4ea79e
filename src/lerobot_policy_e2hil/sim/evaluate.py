"""Teacher-free evaluation of a checkpoint, with the actor's own inference path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def mean_action(policy: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The policy's deterministic action: ``tanh`` of the Gaussian mean, argmax of the gripper critic.

    ``select_action`` samples from the tanh-Gaussian, as the actor does while training; SAC-style
    evaluations (HIL-SERL's included) usually act with the mode instead.
    """
    _, _, means = policy.actor(batch, None)
    action = torch.tanh(means)
    if policy.config.num_discrete_actions is not None and policy.discrete_critic is not None:
        gripper = torch.argmax(policy.discrete_critic(batch, None), dim=-1, keepdim=True)
        action = torch.cat([action, gripper.to(action.dtype)], dim=-1)
    return action


def evaluate_checkpoint(
    pretrained_model: Path, env_cfg: Any, episodes: int, seed: int = 10_000, deterministic: bool = False
) -> float:
    """Success fraction of ``pretrained_model`` over ``episodes`` teacher-free episodes.

    Observations go through the policy preprocessor's ``process_observation``; actions come from
    ``select_action`` as in LeRobot's actor (sampled), or from :func:`mean_action`. The env is the
    run's env without a teacher. With a fixed cube and ``deterministic`` every episode is the same.

    Args:
        pretrained_model: A checkpoint's ``pretrained_model`` directory.
        env_cfg: The run's :class:`~.config.E2HiLSimEnvConfig`.
        episodes: Number of episodes.
        seed: Seed of the cube positions (numpy's global generator, which gym-hil uses) and of
            torch's generator (the sampled actions).
        deterministic: Act with the mode of the policy instead of a sample.

    Returns:
        Successful episodes / episodes.
    """
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies import make_policy, make_pre_post_processors
    from lerobot.processor import VanillaObservationProcessorStep

    from .env import make_sim_env

    policy_cfg = PreTrainedConfig.from_pretrained(pretrained_model)
    policy_cfg.pretrained_path = str(pretrained_model)
    policy = make_policy(cfg=policy_cfg, env_cfg=env_cfg).eval()
    preprocessor, _ = make_pre_post_processors(policy_cfg, pretrained_path=str(pretrained_model))
    to_lerobot = VanillaObservationProcessorStep()
    env = make_sim_env({**env_cfg.sim_options(teacher=False), "seed": seed})
    np.random.seed(seed)
    torch.manual_seed(seed)
    act = (lambda b: mean_action(policy, b)) if deterministic else policy.select_action
    successes = 0
    try:
        for _ in range(episodes):
            obs, _ = env.reset()
            done = False
            info: dict = {}
            while not done:
                batch = {
                    k: v for k, v in to_lerobot.observation(obs).items() if k in policy_cfg.input_features
                }
                with torch.inference_mode():
                    action = act(preprocessor.process_observation(batch))
                obs, _, terminated, truncated, info = env.step(action.squeeze(0).cpu().numpy())
                done = terminated or truncated
            successes += bool(info.get("is_success", False))
    finally:
        env.close()
    return successes / max(1, episodes)
