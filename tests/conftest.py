"""Test-wide settings (headless MuJoCo, no hub access) and fixtures shared by several test files."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]


def save_small_sim_checkpoint(directory: Path) -> Path:
    """A randomly initialised sim policy saved as the learner saves ``pretrained_model``."""
    import torch
    from lerobot.policies import make_pre_post_processors
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy

    from lerobot_policy_e2hil.sim.config import sim_features

    policy_json = json.loads((ROOT / "HIL-SERL/train_gym_hil_env_SIM.json").read_text())["policy"]
    features = sim_features(image_obs=False)
    config = GaussianActorConfig(
        input_features={
            "observation.state": features["agent_pos"],
            "observation.environment_state": features["environment_state"],
        },
        output_features={"action": features["action"]},
        num_discrete_actions=3,
        latent_dim=32,
        dataset_stats=policy_json["dataset_stats"],
    )
    config.actor_network_kwargs.hidden_dims = [32, 32]
    torch.manual_seed(0)
    policy = GaussianActorPolicy(config)
    pretrained = directory / "pretrained_model"
    policy.save_pretrained(pretrained)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=config.dataset_stats)
    preprocessor.save_pretrained(pretrained)
    postprocessor.save_pretrained(pretrained)
    return pretrained


@pytest.fixture
def small_sim_checkpoint(tmp_path) -> Path:
    """:func:`save_small_sim_checkpoint` in the test's ``tmp_path``."""
    return save_small_sim_checkpoint(tmp_path)


@pytest.fixture
def lerobot_eval_on_sim(tmp_path) -> Callable[..., tuple[subprocess.CompletedProcess, Path]]:
    """Run LeRobot's ``lerobot-eval`` on the headless sim env in a fresh process.

    Returns:
        ``run(policy_path, max_episode_steps, n_episodes) -> (completed process, output dir)``.
    """

    def run(
        policy_path: Path, max_episode_steps: int, n_episodes: int
    ) -> tuple[subprocess.CompletedProcess, Path]:
        out = tmp_path / "eval"
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "lerobot-eval"),
                f"--policy.path={policy_path}",
                "--env.type=e2hil_sim",
                f"--env.max_episode_steps={max_episode_steps}",
                f"--eval.n_episodes={n_episodes}",
                "--eval.batch_size=1",
                "--policy.device=cpu",
                f"--output_dir={out}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "MUJOCO_GL": "egl"},
        )
        return result, out

    return run
