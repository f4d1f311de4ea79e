"""Where one SAC ``update()`` spends its time: phases, torch operators, and the plain-torch floor.

Profiles LeRobot 0.6.1's ``SACAlgorithm.update`` (``--fast 0``, the default) or ours with
:mod:`lerobot_policy_e2hil.algorithm.fast_update` (``--fast 1``) on a state-only policy, batch 128, one
torch thread, synthetic batches. Prints, per update:

* phases: exclusive CPU time (``time.thread_time``) of each piece of the update, measured by
  wrapping the methods it calls (losses, the actor's and critics' forwards, ``backward``, Adam, ``clip_grad_norm_``,
  target update);
* operators: shares of ``torch.profiler`` self time, grouped into matmul, elementwise, optimizer
  and the rest (the profiler adds its own overhead per operator, so only the shares are shown);
* the floor: ``bench_fast_update.FloorUpdate`` (the same forward and backward passes in plain
  torch on copies of the same networks, no optimizer) in the same process;
* replay: one batch from an ``OnlineOfflineMixer`` over two filled ``ReplayBuffer`` s.

With ``--e2hil`` it breaks down instead what E2HiL's update (fast, ``policy_gradient``, K Monte
Carlo actions per state) costs on top of SAC's (fast), batch 256: the two updates alternate
in one process; the pieces of E2HiL's actor loss are timed in place (CPU time), and the
layers of the Monte Carlo estimate one by one on the same shapes.

    python benchmarks/experiments/profile_update.py            # LeRobot's update
    python benchmarks/experiments/profile_update.py --fast 1   # ours
    python benchmarks/experiments/profile_update.py --e2hil --batch-size 256 --k 8
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_fast_update
from bench_fast_update import FloorUpdate, build_sac, int_at_least, positive_int  # noqa: E402
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


def _cpu_ms(function, repeats: int = 20, rounds: int = 5) -> float:
    """Median over rounds of the mean CPU milliseconds of ``function()``."""
    function()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(repeats):
            function()
        times.append((time.process_time() - start) * 1000 / repeats)
    return statistics.median(times)


def estimate_layers(algorithm, batch: dict, k: int) -> dict[str, float]:
    """CPU ms of each piece of the fast Monte Carlo estimate, on the shapes of ``algorithm``'s update."""
    from lerobot_policy_e2hil.algorithm.e2hil_algorithm import action_distribution, sample_with_log_prob
    from lerobot_policy_e2hil.algorithm.fast_update import HeadWorkspace, heads_min_q, state_parts
    from lerobot_policy_e2hil.algorithm.influence import e2hil_actor_loss

    heads = list(algorithm.critic_ensemble.critics)
    forward_batch = algorithm._prepare_forward_batch(batch)
    with torch.no_grad():
        encoding = algorithm.critic_ensemble.encoder(forward_batch["state"])
        distribution = action_distribution(
            algorithm.policy.actor, algorithm.policy.actor.encoder(forward_batch["state"])
        )
        actions, log_probs = sample_with_log_prob(distribution, k)
    rows = actions.reshape(-1, actions.shape[-1])
    first, _, _, second, norm, activation = heads[0].net.net
    hidden = torch.randn(rows.shape[0], second.in_features)
    workspace = HeadWorkspace()
    base = state_parts(heads, encoding)
    per_head = len(heads)
    with torch.no_grad():
        pieces = {
            "whole estimate (heads_min_q, buffers reused)": _cpu_ms(
                lambda: heads_min_q(heads, base, actions, workspace)
            ),
            "same, fresh tensors every call": _cpu_ms(lambda: heads_min_q(heads, base, actions)),
            "state part W_e e + b (avoided by the anchor)": per_head
            * _cpu_ms(
                lambda: torch.nn.functional.linear(
                    encoding, first.weight[:, : encoding.shape[-1]], first.bias
                )
            ),
            "first layer: action columns + add": per_head
            * _cpu_ms(
                lambda: (
                    torch.mm(rows, first.weight[:, -rows.shape[-1] :].t())
                    .view(*actions.shape[:2], -1)
                    .add_(base[0])
                )
            ),
            f"second layer GEMM ({rows.shape[0]} x {second.in_features} x {second.out_features})": per_head
            * _cpu_ms(lambda: second(hidden)),
            "LayerNorm (2 per head)": 2 * per_head * _cpu_ms(lambda: norm(hidden)),
            f"{type(activation).__name__} (2 per head)": 2 * per_head * _cpu_ms(lambda: activation(hidden)),
            "output layer": per_head * _cpu_ms(lambda: heads[0].output_layer(hidden)),
            "sampling + log-prob (sample_with_log_prob)": _cpu_ms(
                lambda: sample_with_log_prob(distribution, k)
            ),
        }
    per_sample = torch.randn(encoding.shape[0], requires_grad=True)
    q_values = torch.randn_like(log_probs)
    pieces["influence, quantiles, mask, loss, diagnostics (e2hil_actor_loss)"] = _cpu_ms(
        lambda: e2hil_actor_loss(per_sample, log_probs.t(), q_values.t(), 0.1)
    )
    _, info = e2hil_actor_loss(per_sample, log_probs.t(), q_values.t(), 0.1)
    scalars = {name: value for name, value in info.items() if value.dim() == 0}
    pieces["diagnostics .item() (_keep_diagnostics)"] = _cpu_ms(lambda: [v.item() for v in scalars.values()])
    return pieces


def e2hil_main(args) -> None:
    """E2HiL's extra cost over SAC (both fast), in place and piece by piece."""
    from lerobot_policy_e2hil.algorithm import e2hil_algorithm

    torch.manual_seed(0)
    policy = make_policy()
    sac = build_sac(policy, fast=True)
    e2hil = build_sac(copy.deepcopy(policy), True, "e2hil", num_action_samples=args.k)
    for algorithm in (e2hil,):
        algorithm.critic_ensemble.load_state_dict(sac.critic_ensemble.state_dict())
        algorithm.critic_target.load_state_dict(sac.critic_target.state_dict())
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(policy, args.batch_size, generator=generator) for _ in range(args.updates)]
    timer = PhaseTimer()
    timer.wrap(e2hil, "_monte_carlo_min_q", "Monte Carlo estimate (heads_min_q)")
    timer.wrap(e2hil, "_keep_diagnostics", "diagnostics (.item())")
    timer.wrap(e2hil_algorithm, "sample_with_log_prob", "sampling + log-prob")
    timer.wrap(e2hil_algorithm, "e2hil_actor_loss", "influence, quantiles, mask, masked mean")
    times: dict[str, list[float]] = {"sac": [], "e2hil": []}
    for round_index in range(args.rounds + 1):
        for name, algorithm in (("sac", sac), ("e2hil", e2hil)):
            timer.active = name == "e2hil" and round_index > 0
            start = time.process_time()
            for batch in batches:
                algorithm.update(iter((batch,)))
            if round_index > 0:  # round 0 warms up
                times[name].append((time.process_time() - start) * 1000 / len(batches))
    timer.active = False
    sac_ms, e2hil_ms = statistics.median(times["sac"]), statistics.median(times["e2hil"])
    extra = e2hil_ms - sac_ms
    print(
        f"E2HiL (fast, policy_gradient, K={args.k}) vs SAC (fast), state-only, batch {args.batch_size}, "
        f"1 thread, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"CPU ms per update: SAC {sac_ms:.2f}   E2HiL {e2hil_ms:.2f} (instrumented)   "
        f"ratio {e2hil_ms / sac_ms:.3f}   extra {extra:.2f}"
    )
    print("E2HiL's extra, in place (exclusive CPU ms per update):")
    n_updates = args.rounds * len(batches)
    phases = {label: total * 1000 / n_updates for label, total in timer.totals.items()}
    for label, ms in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"  {label:<48} {ms:7.2f}")
    print(f"  {'rest (actor-loss structure, noise)':<48} {extra - sum(phases.values()):7.2f}")
    print(
        f"the estimate's pieces, one by one on the same shapes (CPU ms per update, {len(e2hil.critic_ensemble.critics)} heads):"
    )
    for label, ms in estimate_layers(e2hil, batches[0], args.k).items():
        print(f"  {label:<64} {ms:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fast", type=int, choices=(0, 1), default=0, help="1: profile our fast update")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--updates", type=positive_int, default=20)
    parser.add_argument("--rounds", type=positive_int, default=5, help="alternating update/floor rounds")
    parser.add_argument("--e2hil", action="store_true", help="E2HiL's extra cost over SAC, both fast")
    parser.add_argument("--k", type=int_at_least(2), default=8, help="E2HiL Monte Carlo actions per state")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.e2hil:
        e2hil_main(args)
        return

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
