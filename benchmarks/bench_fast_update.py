"""Milliseconds per SAC ``update()``: LeRobot 0.6.1's own, ours (fast update), and the floor.

Three contenders on identical batches and identical initial weights, in one process, timed in
alternating rounds so that machine load hits them alike:

* ``lerobot``: LeRobot's ``SACAlgorithm`` (``"type": "sac"``);
* ``fast``: the same algorithm with :class:`lerobot_policy_e2hil.algorithm.fast_update.FastUpdateMixin`
  (``"type": "sac_fast"``);
* ``floor``: the same networks (copies of the actor, the critic ensemble and the target heads)
  driven by plain torch: the forward passes of one SAC update (actor on the next states, target
  heads, critic heads with backward, actor and critic heads with backward, actor for the
  temperature) with a diagonal Gaussian written out by hand, no optimizer and no
  torch.distributions. ``floor+adam`` adds one ``foreach`` Adam step per loss.

With ``--e2hil`` the contenders are instead SAC and E2HiL (``policy_gradient``, K Monte Carlo
actions), each as LeRobot-built (``"sac"``; E2HiL with ``fast_update: false``) and fast, all
four from the same weights: the E2HiL/SAC ratio before and after, side by side. A fifth,
``e2hil split``, is the fast E2HiL with the Monte Carlo estimate it had before its buffers and
its first layer at SAC's action (issue 14, item 3): the state part of each head's first layer
once per state, fresh tensors at every update.

Figures: median over rounds of the mean time per update, and the ratios of the medians, in CPU
time of the process (``time.process_time``: on a busy machine wall time mostly measures the
scheduler) and, for reference, in wall time.

    python benchmarks/bench_fast_update.py                        # SAC: LeRobot vs fast vs floor, batch 128, 1 thread
    python benchmarks/bench_fast_update.py --e2hil --batch-size 256 --k 8
    python benchmarks/bench_fast_update.py --e2hil --batch-size 256 --k 8 --cameras 2 --updates 2 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812

from lerobot_policy_e2hil.algorithm.fast_update import heads_min_q, state_parts
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch


def build_sac(policy, fast: bool, algorithm_type: str = "sac", **overrides):
    """``make_algorithm`` for ``"sac"`` (``"sac_fast"`` when ``fast``) or ``"e2hil"`` with ``fast_update=fast``."""
    if algorithm_type == "sac":
        return make_rl_algorithm("sac_fast" if fast else "sac", policy, **overrides)
    return make_rl_algorithm(algorithm_type, policy, fast_update=fast, **overrides)


def with_split_estimate(algorithm):
    """``algorithm`` (a fast E2HiL) with the state-split estimate and no reused buffers (the earlier one)."""
    heads = list(algorithm.critic_ensemble.critics)

    def estimate(encoding, actions, anchor=None):
        return heads_min_q(heads, state_parts(heads, encoding), actions)

    algorithm._monte_carlo_min_q = estimate
    return algorithm


class FloorUpdate:
    """One SAC update's forward and backward passes in plain torch, on copies of ``algorithm``'s networks.

    Args:
        algorithm: A built ``SACAlgorithm`` (state-only policy, no discrete critic).
        with_adam: Also take one ``foreach`` Adam step per loss.
    """

    def __init__(self, algorithm, with_adam: bool):
        self.actor = copy.deepcopy(algorithm.policy.actor)
        self.critic = copy.deepcopy(algorithm.critic_ensemble)
        self.target_heads = copy.deepcopy(algorithm.critic_target.critics)
        if algorithm.policy.config.shared_encoder:
            self.actor.encoder = self.critic.encoder
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.discount = algorithm.config.discount
        self.target_entropy = algorithm.target_entropy
        actor_params = [p for n, p in self.actor.named_parameters() if not n.startswith("encoder")]
        self.optimizers = []
        if with_adam:
            self.optimizers = [
                torch.optim.Adam(list(self.critic.parameters()), foreach=True),
                torch.optim.Adam(actor_params, foreach=True),
                torch.optim.Adam([self.log_alpha], foreach=True),
            ]

    def _policy(self, observations) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.actor.network(self.actor.encoder(observations))
        mean = self.actor.mean_layer(hidden)
        std = torch.clamp(torch.exp(self.actor.std_layer(hidden)), self.actor.std_min, self.actor.std_max)
        noise = torch.randn_like(mean)
        pre = mean + std * noise
        action = torch.tanh(pre)
        log_prob = (-0.5 * noise.square() - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return action, log_prob

    def _q(self, heads, encoding, action) -> torch.Tensor:
        inputs = torch.cat([encoding, action], dim=-1)
        return torch.stack([head(inputs).squeeze(-1) for head in heads])

    def _step(self, loss: torch.Tensor, index: int, params) -> None:
        for p in params:
            p.grad = None
        loss.backward()
        if self.optimizers:
            self.optimizers[index].step()

    def update(self, batch) -> None:
        state, next_state = batch["state"], batch["next_state"]
        alpha = self.log_alpha.exp().item()
        with torch.no_grad():
            next_action, next_log_prob = self._policy(next_state)
            next_q = self._q(self.target_heads, self.critic.encoder(next_state), next_action).min(0)[0]
            target = batch["reward"] + (1 - batch["done"]) * self.discount * (next_q - alpha * next_log_prob)
        q = self._q(self.critic.critics, self.critic.encoder(state), batch["action"])
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(1).sum()
        self._step(critic_loss, 0, self.critic.parameters())

        action, log_prob = self._policy(state)
        q_pi = self._q(self.critic.critics, self.critic.encoder(state), action).min(0)[0]
        actor_loss = (alpha * log_prob - q_pi).mean()
        self._step(actor_loss, 1, self.actor.parameters())

        with torch.no_grad():
            _, log_prob = self._policy(state)
        temperature_loss = (-self.log_alpha.exp() * (log_prob + self.target_entropy)).mean()
        self._step(temperature_loss, 2, [self.log_alpha])


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse names the flag in its one-line error)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse's word for a value that is not one: "invalid integer value"
    return parse


positive_int = int_at_least(1)


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """The batch, thread and round flags the update benchmarks share."""
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    parser.add_argument("--updates", type=positive_int, default=20, help="updates per timed round")
    parser.add_argument("--rounds", type=positive_int, default=7, help="alternating rounds")


def time_round(update: Callable[[dict], object], batches: list[dict]) -> tuple[float, float]:
    """Mean CPU and wall milliseconds of ``update(batch)`` over ``batches``."""
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        update(batch)
    scale = 1000 / len(batches)
    return (time.process_time() - cpu) * scale, (time.perf_counter() - wall) * scale


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_timing_arguments(parser)
    parser.add_argument("--e2hil", action="store_true", help="SAC and E2HiL, LeRobot-built and fast")
    parser.add_argument("--k", type=int_at_least(2), default=8, help="E2HiL Monte Carlo actions per state")
    parser.add_argument("--cameras", type=int, default=0, choices=(0, 1, 2), help="128x128 cameras")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    policy = make_policy(num_cameras=args.cameras)
    lerobot = build_sac(policy, fast=False)
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(policy, args.batch_size, generator=generator) for _ in range(args.updates)]
    if args.e2hil:
        algorithms = {
            "sac lerobot": lerobot,
            "e2hil lerobot": build_sac(copy.deepcopy(policy), False, "e2hil", num_action_samples=args.k),
            "sac fast": build_sac(copy.deepcopy(policy), True),
            "e2hil fast": build_sac(copy.deepcopy(policy), True, "e2hil", num_action_samples=args.k),
            "e2hil split": with_split_estimate(
                build_sac(copy.deepcopy(policy), True, "e2hil", num_action_samples=args.k)
            ),
        }
    else:
        algorithms = {"lerobot": lerobot, "fast": build_sac(copy.deepcopy(policy), fast=True)}
    for algorithm in algorithms.values():
        algorithm.critic_ensemble.load_state_dict(lerobot.critic_ensemble.state_dict())
        algorithm.critic_target.load_state_dict(lerobot.critic_target.state_dict())
    contenders: dict[str, Callable[[dict], object]] = {
        name: (lambda batch, algorithm=algorithm: algorithm.update(iter((batch,))))
        for name, algorithm in algorithms.items()
    }
    if not args.e2hil:
        contenders["floor"] = FloorUpdate(lerobot, with_adam=False).update
        contenders["floor+adam"] = FloorUpdate(lerobot, with_adam=True).update
    times: dict[str, list[float]] = {name: [] for name in contenders}
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    for update in contenders.values():  # warm-up: allocator, kernels, optimizer state
        time_round(update, batches[:3])
    for _ in range(args.rounds):
        for name, update in contenders.items():
            cpu, wall = time_round(update, batches)
            times[name].append(cpu)
            walls[name].append(wall)

    median = {name: statistics.median(values) for name, values in times.items()}
    wall_median = {name: statistics.median(values) for name, values in walls.items()}
    inputs = f"{args.cameras} camera(s) 128x128" if args.cameras else "state-only"
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {inputs}, batch {args.batch_size}, "
        f"{args.rounds} rounds x {args.updates} updates, load average {os.getloadavg()[0]:.2f}"
    )
    print("CPU ms per update (median of rounds, min-max), wall ms (median)")
    for name, value in median.items():
        spread = f"{min(times[name]):.1f}-{max(times[name]):.1f}"
        print(f"{name:<14} {value:8.2f}  ({spread})  wall {wall_median[name]:8.2f}")
    if args.e2hil:
        for mode in ("lerobot", "fast"):
            ratio = median[f"e2hil {mode}"] / median[f"sac {mode}"]
            print(f"E2HiL/SAC ({mode:<7}) {ratio:.3f}  (K={args.k}, policy_gradient)")
        split_ratio = median["e2hil split"] / median["sac fast"]
        print(f"E2HiL/SAC (split  ) {split_ratio:.3f}  (fast update, the estimate without buffers or anchor)")
        print(f"speed-up SAC lerobot/fast   {median['sac lerobot'] / median['sac fast']:.2f}")
        print(f"speed-up E2HiL lerobot/fast {median['e2hil lerobot'] / median['e2hil fast']:.2f}")
        return
    print(f"speed-up lerobot/fast   {median['lerobot'] / median['fast']:.2f}  (target >= 1.5)")
    print(f"fast/floor              {median['fast'] / median['floor']:.2f}  (target <= 2)")
    print(f"fast/(floor+adam)       {median['fast'] / median['floor+adam']:.2f}")


if __name__ == "__main__":
    main()
