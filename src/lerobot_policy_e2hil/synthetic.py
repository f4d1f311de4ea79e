"""Small synthetic policies, algorithms and replay batches, for tests and benchmarks.

They use LeRobot's real classes (``GaussianActorPolicy``, ``SACAlgorithm`` /
``E2HiLAlgorithm``) on random data, so losses, gradients and timings are those of training
without an environment.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.factory import make_algorithm, make_algorithm_config
from lerobot.rl.buffer import ReplayBuffer
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_STATE

CAMERA_KEYS = ("observation.images.front", "observation.images.wrist")


def make_policy(
    *,
    state_dim: int = 18,
    env_dim: int = 3,
    action_dim: int = 3,
    num_cameras: int = 0,
    image_size: int = 128,
    num_discrete_actions: int | None = None,
    hidden_dim: int = 256,
    latent_dim: int = 256,
    device: str = "cpu",
) -> GaussianActorPolicy:
    """A ``GaussianActorPolicy`` with state, environment-state and optional camera inputs."""
    input_features = {
        OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(state_dim,)),
        OBS_ENV_STATE: PolicyFeature(type=FeatureType.ENV, shape=(env_dim,)),
    }
    for key in CAMERA_KEYS[:num_cameras]:
        input_features[key] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size))
    config = GaussianActorConfig(
        input_features=input_features,
        output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
        num_discrete_actions=num_discrete_actions,
        latent_dim=latent_dim,
        device=device,
    )
    config.actor_network_kwargs.hidden_dims = [hidden_dim, hidden_dim]
    return GaussianActorPolicy(config)


def make_rl_algorithm(algorithm_type: str, policy: GaussianActorPolicy, **overrides: Any):
    """Build ``algorithm_type`` for ``policy`` through LeRobot's own ``make_algorithm``."""
    config: RLAlgorithmConfig = make_algorithm_config(
        algorithm_type, policy_config=policy.config, **overrides
    )
    algorithm = make_algorithm(config, policy)
    algorithm.make_optimizers_and_scheduler()
    return algorithm


def random_batch(
    policy: GaussianActorPolicy,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    intervention: torch.Tensor | None = None,
) -> dict[str, Any]:
    """A replay batch shaped like ``ReplayBuffer.sample`` output for ``policy``'s features."""

    def observation() -> dict[str, torch.Tensor]:
        return {
            key: torch.rand((batch_size, *feature.shape), generator=generator)
            for key, feature in policy.config.input_features.items()
        }

    action_dim = policy.config.output_features[ACTION].shape[0]
    actions = torch.rand((batch_size, action_dim), generator=generator) * 2 - 1
    if policy.config.num_discrete_actions is not None:
        discrete = torch.randint(0, policy.config.num_discrete_actions, (batch_size, 1), generator=generator)
        actions = torch.cat([actions, discrete.float()], dim=-1)
    batch: dict[str, Any] = {
        "state": observation(),
        ACTION: actions,
        "reward": torch.rand(batch_size, generator=generator),
        "next_state": observation(),
        "done": torch.zeros(batch_size),
        "truncated": torch.zeros(batch_size),
    }
    if intervention is not None:
        batch["complementary_info"] = {"is_intervention": intervention.float()}
    return batch


def state_only_replay_buffer(transitions: int, episode_length: int, seed: int = 0) -> ReplayBuffer:
    """A replay buffer shaped as the state-only sim's: 18-D state, 3-D cube position, 4-D action.

    ``transitions`` steps in episodes of ``episode_length`` (the last one possibly unfinished),
    reward 1 at each episode's end, and the complementary info the actor sends.
    """
    buffer = ReplayBuffer(
        capacity=transitions, device="cpu", state_keys=[OBS_STATE, OBS_ENV_STATE], storage_device="cpu"
    )
    generator = torch.Generator().manual_seed(seed)
    for i in range(transitions):
        state = {
            OBS_STATE: torch.randn(1, 18, generator=generator),
            OBS_ENV_STATE: torch.rand(1, 3, generator=generator),
        }
        last = i % episode_length == episode_length - 1
        buffer.add(
            state=state,
            action=torch.randn(1, 4, generator=generator),
            reward=float(last),
            next_state={key: value + 0.01 for key, value in state.items()},
            done=last,
            truncated=False,
            complementary_info={
                "discrete_penalty": torch.tensor([0.5 * (i % 3)]),
                "is_intervention": torch.tensor([float(i % 5 == 0)]),
            },
        )
    return buffer
