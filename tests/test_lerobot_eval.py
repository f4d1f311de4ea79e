"""LeRobot's own ``lerobot-eval`` evaluates a small checkpoint on our headless sim env."""

import json

import pytest
import torch
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy

import lerobot_policy_e2hil  # noqa: F401  (installs the select_action fix under test)


def test_select_action_accepts_non_tensor_entries(small_sim_checkpoint):
    policy = GaussianActorPolicy.from_pretrained(small_sim_checkpoint)
    batch = {"observation.state": torch.zeros(2, 18), "observation.environment_state": torch.zeros(2, 3)}
    action = policy.select_action({**batch, "task": ["", ""], "action": None})
    assert action.shape == (2, 4)  # 3 continuous + the gripper's discrete choice


@pytest.mark.e2e
def test_lerobot_eval_runs_on_the_sim(small_sim_checkpoint, lerobot_eval_on_sim):
    result, out = lerobot_eval_on_sim(small_sim_checkpoint, max_episode_steps=20, n_episodes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 2
    assert 0.0 <= overall["pc_success"] <= 100.0
