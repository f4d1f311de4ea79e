"""LeRobot's own ``lerobot-eval`` evaluates a small checkpoint on our headless sim env."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from lerobot.policies import make_pre_post_processors
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy

import lerobot_policy_e2hil  # noqa: F401  (installs the select_action fix under test)
from lerobot_policy_e2hil.sim.config import sim_features

ROOT = Path(__file__).resolve().parents[1]


def small_checkpoint(directory: Path) -> Path:
    """A randomly initialised sim policy saved as the learner saves ``pretrained_model``."""
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


def test_select_action_accepts_non_tensor_entries(tmp_path):
    policy = GaussianActorPolicy.from_pretrained(small_checkpoint(tmp_path))
    batch = {"observation.state": torch.zeros(2, 18), "observation.environment_state": torch.zeros(2, 3)}
    action = policy.select_action({**batch, "task": ["", ""], "action": None})
    assert action.shape == (2, 4)  # 3 continuous + the gripper's discrete choice


def test_lerobot_eval_runs_on_the_sim(tmp_path):
    pretrained = small_checkpoint(tmp_path)
    out = tmp_path / "eval"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-eval"),
            f"--policy.path={pretrained}",
            "--env.type=e2hil_sim",
            "--env.max_episode_steps=20",
            "--eval.n_episodes=2",
            "--eval.batch_size=1",
            "--policy.device=cpu",
            f"--output_dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 2
    assert 0.0 <= overall["pc_success"] <= 100.0
