"""Where one SAC ``update()`` spends its time: phases, torch operators, and the plain-torch floor.

Profiles LeRobot 0.6.1's ``SACAlgorithm.update`` (``--fast 0``, the default) or ours with
:mod:`lerobot_policy_e2hil.fast_update` (``--fast 1``) on a state-only policy, batch 128, one
torch thread, synthetic batches. Prints, per update:

* phases: exclusive CPU time (``time.thread_time``) of each piece of the update, measured by
  wrapping the methods it calls (losses, the actor's and critics' forwards, ``backward``, Adam, ``clip_grad_norm_``,
  target update);
* operators: shares of ``torch.profiler`` self time, grouped into matmul, elementwise, optimizer
  and the rest (the profiler adds its own overhead per operator, so only the shares are shown);
* the floor: ``bench_fast_update.FloorUpdate`` (the same forward and backward passes in plain
  torch on copies of the same networks, no optimizer) in the same process;
* replay: one batch from an ``OnlineOfflineMixer`` over two filled ``ReplayBuffer`` s.

    python benchmarks/profile_update.py            # LeRobot's update
    python benchmarks/profile_update.py --fast 1   # ours
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fast_update import FloorUpdate, build_sac  # noqa: E402
from lerobot_policy_e2hil.synthetic import make_policy, random_batch  # noqa: E402

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"}
ELEMENTWISE_HINTS = (
    "tanh",
    "silu",
    "layer_norm",
    "exp",
    "log",
    "mul",
    "add",
    "sub",
    "div",
    "sqrt",
    "lerp",
    "pow",
)


class PhaseTimer:
    """Exclusive CPU time of wrapped callables (a wrapped call inside another is not counted twice)."""

    def __init__(self):
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.active = False
        self._stack: list[float] = []

    def wrap(self, owner, name: str, label: str) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            if not self.active:
                return function(*args, **kwargs)
            start = time.thread_time()
            self._stack.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - start
                inner = self._stack.pop()
                self.totals[label] += elapsed - inner
                if self._stack:
                    self._stack[-1] += elapsed

        setattr(owner, name, timed)


def instrument(algorithm) -> tuple[PhaseTimer, list]:
    """Wrap the pieces of ``algorithm.update``; returns the timer and the patches to undo."""
    timer = PhaseTimer()
    saved = [
        (torch.Tensor, "backward", torch.Tensor.backward),
        (torch.nn.utils, "clip_grad_norm_", torch.nn.utils.clip_grad_norm_),
    ]
    for name, label in (
        ("_compute_loss_critic", "critic loss (rest)"),
        ("_compute_loss_actor", "actor loss (rest)"),
        ("_compute_loss_temperature", "temperature loss (rest)"),
        ("_update_target_networks", "target update"),
    ):
        timer.wrap(algorithm, name, label)
    timer.wrap(algorithm.policy.actor, "forward", "actor forward + distribution")
    timer.wrap(algorithm.critic_ensemble, "forward", "critic heads forward")
    timer.wrap(algorithm.critic_target, "forward", "target heads forward")
    for optimizer in algorithm.optimizers.values():
        timer.wrap(optimizer, "step", "Adam step")
        timer.wrap(optimizer, "zero_grad", "zero_grad")
    timer.wrap(torch.Tensor, "backward", "backward")
    timer.wrap(torch.nn.utils, "clip_grad_norm_", "clip_grad_norm_")
    return timer, saved


def operator_breakdown(algorithm, batches) -> dict[str, float]:
    """``torch.profiler`` self CPU milliseconds per update, grouped."""
    iterator = iter(batches)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in batches:
            algorithm.update(iterator)
    groups: dict[str, float] = collections.defaultdict(float)
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000 / len(batches)
        if event.key in MATMUL_OPS:
            groups["matmul (mm, addmm, bmm)"] += ms
        elif event.key.startswith("Optimizer.") or event.key.startswith("aten::_foreach"):
            groups["optimizer (Python + foreach)"] += ms
        elif event.key.startswith("aten::") and any(h in event.key for h in ELEMENTWISE_HINTS):
            groups["elementwise (activations, norms, arithmetic)"] += ms
        else:
            groups["other (views, copies, autograd, reductions, ...)"] += ms
    return dict(groups)


def replay_ms(batch_size: int, policy, rounds: int = 200) -> float:
    """CPU milliseconds to draw one mixed batch from two filled state-only replay buffers."""
    from lerobot.rl.buffer import ReplayBuffer
    from lerobot.rl.data_sources import OnlineOfflineMixer

    def filled(size: int) -> ReplayBuffer:
        buffer = ReplayBuffer(
            size, device="cpu", state_keys=list(policy.config.input_features), optimize_memory=True
        )
        generator = torch.Generator().manual_seed(size)
        for _ in range(size):
            sample = random_batch(policy, 1, generator=generator)
            buffer.add(
                state={k: v for k, v in sample["state"].items()},
                action=sample["action"],
                reward=1.0,
                next_state={k: v for k, v in sample["next_state"].items()},
                done=False,
                truncated=False,
                complementary_info={"is_intervention": torch.tensor([False])},
            )
        return buffer

    mixer = OnlineOfflineMixer(filled(2000), filled(500), online_ratio=0.5)
    iterator = mixer.get_iterator(batch_size, async_prefetch=False)
    next(iterator)
    start = time.thread_time()
    for _ in range(rounds):
        next(iterator)
    return (time.thread_time() - start) * 1000 / rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fast", type=int, choices=(0, 1), default=0, help="1: profile our fast update")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="alternating update/floor rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)

    torch.manual_seed(0)
    policy = make_policy()
    algorithm = build_sac(policy, fast=bool(args.fast))
    floor = FloorUpdate(algorithm, with_adam=False)
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(policy, args.batch_size, generator=generator) for _ in range(args.updates)]
    for batch in batches[:3]:
        algorithm.update(iter((batch,)))
        floor.update(batch)

    operators = operator_breakdown(algorithm, batches)
    timer, saved = instrument(algorithm)
    update_ms, floor_ms = [], []
    for _ in range(args.rounds):
        timer.active = True
        start = time.thread_time()
        for batch in batches:
            algorithm.update(iter((batch,)))
        update_ms.append((time.thread_time() - start) * 1000 / len(batches))
        timer.active = False
        start = time.thread_time()
        for batch in batches:
            floor.update(batch)
        floor_ms.append((time.thread_time() - start) * 1000 / len(batches))
    for owner, name, value in saved:
        setattr(owner, name, value)
    n_updates = args.rounds * len(batches)

    which = "ours (fast update)" if args.fast else "LeRobot 0.6.1"
    print(
        f"{which} SAC update, state-only, batch {args.batch_size}, 1 thread, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    update, flo = statistics.fmean(update_ms), statistics.fmean(floor_ms)
    print(
        f"CPU ms per update: update (instrumented) {update:7.2f}   floor {flo:7.2f}   ratio {update / flo:.2f}"
    )
    print("phases (exclusive CPU ms per update):")
    phases = {k: v * 1000 / n_updates for k, v in timer.totals.items()}
    for label, ms in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"  {label:<32} {ms:7.2f}  {100 * ms / update:5.1f}%")
    rest = update - sum(phases.values())
    print(f"  {'update() body':<32} {rest:7.2f}  {100 * rest / update:5.1f}%")
    print("operators (share of torch.profiler self time):")
    total = sum(operators.values())
    for label, ms in sorted(operators.items(), key=lambda item: -item[1]):
        print(f"  {label:<48} {100 * ms / total:5.1f}%")
    print(
        f"replay: one mixed batch of {args.batch_size} from two buffers {replay_ms(args.batch_size, policy):.2f} ms"
    )


if __name__ == "__main__":
    main()
