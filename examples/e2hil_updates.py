"""Build the "e2hil" algorithm from a config and run a few updates on a replay buffer.

The pieces are LeRobot's own (``GaussianActorPolicy``, ``ReplayBuffer``, ``make_algorithm``);
importing ``lerobot_policy_e2hil`` is what lets LeRobot's factory build ``"e2hil"``. The buffer
holds random transitions of the sim's shapes (18-D state, 3-D cube position, 3-D end-effector
action plus a discrete gripper command), a share of them flagged as human interventions.

    python examples/e2hil_updates.py --updates 5
    python examples/e2hil_updates.py --updates 5 --num-action-samples 16 --influence-form natural
"""

from __future__ import annotations

import argparse

DIAGNOSTICS = (
    "loss_critic",
    "loss_actor",
    "e2hil/kept_fraction",
    "e2hil/entropy",
    "e2hil/c_mean",
    "e2hil/intervention_fraction",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5, help="learner updates to run (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="replay batch size (default 64)")
    parser.add_argument("--transitions", type=int, default=500, help="random transitions in the buffer")
    parser.add_argument("--intervention-share", type=float, default=0.2, help="share flagged as human")
    parser.add_argument("--num-action-samples", type=int, default=8, help="K, Monte Carlo actions per state")
    parser.add_argument(
        "--influence-form", default="policy_gradient", help="policy_gradient, natural, first_order"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """The policy, the E2HiL algorithm for it, and a replay buffer of random transitions."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
    from lerobot.rl.algorithms.factory import make_algorithm, make_algorithm_config
    from lerobot.rl.buffer import ReplayBuffer

    import lerobot_policy_e2hil  # noqa: F401  (registers "e2hil" with LeRobot's config and factory)

    torch.manual_seed(args.seed)
    features = {
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(18,)),
        "observation.environment_state": PolicyFeature(type=FeatureType.ENV, shape=(3,)),
    }
    policy_config = GaussianActorConfig(
        input_features=features,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(3,))},
        num_discrete_actions=3,  # the gripper: close / stay / open
        latent_dim=64,
        device="cpu",
    )
    policy_config.actor_network_kwargs.hidden_dims = [64, 64]
    policy = GaussianActorPolicy(policy_config)

    # The same block as "algorithm": {"type": "e2hil", ...} in a HIL-SERL JSON config.
    algorithm_config = make_algorithm_config(
        "e2hil",
        policy_config=policy_config,
        num_action_samples=args.num_action_samples,
        influence_lower_quantile=0.05,
        influence_upper_quantile=0.9,
        influence_form=args.influence_form,
    )
    algorithm = make_algorithm(algorithm_config, policy)
    algorithm.make_optimizers_and_scheduler()

    buffer = ReplayBuffer(capacity=args.transitions, device="cpu", state_keys=list(features))
    for _ in range(args.transitions):
        state = {key: torch.randn(1, *f.shape) for key, f in features.items()}
        next_state = {key: torch.randn(1, *f.shape) for key, f in features.items()}
        action = torch.cat([torch.rand(1, 3) * 2 - 1, torch.randint(0, 3, (1, 1)).float()], dim=-1)
        human = bool(torch.rand(()) < args.intervention_share)
        buffer.add(
            state=state,
            action=action,
            reward=float(torch.rand(()) < 0.1),
            next_state=next_state,
            done=False,
            truncated=False,
            complementary_info={"is_intervention": torch.tensor([float(human)])},
        )
    return policy, algorithm, buffer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _, algorithm, buffer = build(args)
    batches = buffer.get_iterator(batch_size=args.batch_size, async_prefetch=False)
    print(
        f"{type(algorithm).__name__} with K={algorithm.config.num_action_samples}, {len(buffer)} transitions"
    )
    for update in range(1, args.updates + 1):
        logged = algorithm.update(batches).to_log_dict()
        print(f"update {update}: " + " ".join(f"{k}={logged[k]:.4g}" for k in DIAGNOSTICS if k in logged))


if __name__ == "__main__":
    main()
