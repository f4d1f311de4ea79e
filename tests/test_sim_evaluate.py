"""The deterministic evaluation action is the policy's mode, and repeatable."""

import torch

from lerobot_policy_e2hil.sim.evaluate import mean_action
from lerobot_policy_e2hil.synthetic import make_policy, random_batch


def test_mean_action_is_tanh_of_the_mean_and_argmax_gripper():
    torch.manual_seed(0)
    policy = make_policy(num_discrete_actions=3).eval()
    observation = random_batch(policy, 16, generator=torch.Generator().manual_seed(1))["state"]
    with torch.no_grad():
        first = mean_action(policy, observation)
        second = mean_action(policy, observation)
        sampled = policy.select_action(observation)
        _, _, means = policy.actor(observation, None)
        gripper = policy.discrete_critic(observation, None).argmax(dim=-1).float()
    assert first.shape == sampled.shape == (16, 4)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first[:, :3], torch.tanh(means))
    torch.testing.assert_close(first[:, 3], gripper)
    assert not torch.allclose(sampled[:, :3], first[:, :3])
