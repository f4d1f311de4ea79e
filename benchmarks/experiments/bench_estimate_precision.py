"""E2HiL's Monte Carlo estimate with its hidden layer in bfloat16: time and agreement (not shipped).

Issue 14 asks for E2HiL/SAC <= 1.25 per update (state-only, batch 256, K = 8,
``policy_gradient``). What E2HiL adds is mostly its Monte Carlo estimate: each critic head on
K x B rows, and there the 256 x 256 hidden layer's GEMM, already at one core's float32 peak. On
CPUs with bfloat16 matrix units (AMX) and on GPUs that GEMM is several times faster in bfloat16,
at bfloat16's rounding (8 significant bits). This script measures that lever, written here
only (nothing in the package uses it):

* **bf16 estimate**: the shipped fast estimate (:func:`~lerobot_policy_e2hil.algorithm.fast_update.heads_min_q`,
  first layer at the actor loss's action) with each head's hidden linear layer computed from
  bfloat16 copies of its input and weight (the kernel accumulates in float32, rounds the output
  to bfloat16), then back in float32 for the bias, LayerNorm, SiLU and the output layer.
* **time**: CPU ms per update of SAC (fast), E2HiL (fast, the shipped estimate) and E2HiL with
  the bf16 estimate, from the same weights on the same batches, in alternating rounds
  (as ``bench_fast_update.py``), and the two E2HiL/SAC ratios.
* **agreement**: on ``--agreement-batches`` batches of states, the influence ``c`` and the keep
  mask (Eq. 11) from the same K draws per state with the float32 and the bf16 estimate: the
  share of samples whose keep decision differs and Pearson's r of ``c``. The yardstick is the
  same two figures between two independent float32 draws: the estimate's own Monte Carlo noise.
  On the synthetic networks at initialisation; with ``--checkpoint`` on the policy and critics of
  a sim learner checkpoint and states from its replay buffer; with ``--snapshot`` on those of an
  ``e2hil-bench influence-check`` snapshot and its replay batch.

    python benchmarks/experiments/bench_estimate_precision.py                       # batch 256, K = 8, 1 thread
    python benchmarks/experiments/bench_estimate_precision.py --checkpoint outputs/e2hil_sim/<run>/checkpoints/last
    python benchmarks/experiments/bench_estimate_precision.py --snapshot outputs/bench/influence_check_runs/e2hil_seed0/snapshot.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_fast_update
from bench_fast_update import add_timing_arguments, build_sac, int_at_least, positive_int, time_round  # noqa: E402
from lerobot_policy_e2hil.algorithm.configuration_e2hil import COVARIANCE_FORMS  # noqa: E402
from lerobot_policy_e2hil.algorithm.e2hil_algorithm import action_distribution, sample_with_log_prob  # noqa: E402
from lerobot_policy_e2hil.algorithm.fast_update import HeadWorkspace, heads_min_q, state_parts  # noqa: E402
from lerobot_policy_e2hil.algorithm.influence import entropy_bounded_mask, influence_values  # noqa: E402
from lerobot_policy_e2hil.synthetic import make_policy, random_batch  # noqa: E402


class BFloat16Linear(nn.Module):
    """``linear`` computed from bfloat16 copies of its input and weight, the bias added in float32.

    The matrix kernel accumulates in float32 and rounds its output to bfloat16. Not an
    ``nn.Linear``, so :func:`heads_min_q` calls it as a module; it shares ``linear``'s parameters
    and keeps its own buffers from one call to the next.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.workspace = HeadWorkspace()

    def forward(self, hidden: Tensor) -> Tensor:
        like = torch.empty(0, dtype=torch.bfloat16, device=hidden.device)
        rounded = self.workspace.get(0, tuple(hidden.shape), like).copy_(hidden)
        product = self.workspace.get(1, (hidden.shape[0], self.linear.out_features), like)
        torch.mm(rounded, self.linear.weight.to(torch.bfloat16).t(), out=product)
        return torch.add(product, self.linear.bias, out=self.workspace.get(2, tuple(product.shape), hidden))


def bfloat16_heads(heads: list[nn.Module]) -> list[SimpleNamespace]:
    """Views of LeRobot ``CriticHead`` s for :func:`heads_min_q` whose hidden linear layers are :class:`BFloat16Linear`.

    The first layer (its action columns) and the output layer stay float32, as the parameters
    they share with ``heads``.
    """
    views = []
    for head in heads:
        first, *rest = head.net.net
        layers = [first, *(BFloat16Linear(m) if isinstance(m, nn.Linear) else m for m in rest)]
        views.append(SimpleNamespace(net=SimpleNamespace(net=layers), output_layer=head.output_layer))
    return views


def with_bf16_estimate(algorithm):
    """``algorithm`` (a fast E2HiL) with its Monte Carlo estimate on :func:`bfloat16_heads`."""
    heads = bfloat16_heads(list(algorithm.critic_ensemble.critics))
    workspace = HeadWorkspace()

    def estimate(encoding: Tensor, actions: Tensor, anchor=None) -> Tensor:
        if anchor is not None and len(anchor[1]) == len(heads):
            return heads_min_q(heads, anchor[1], actions - anchor[0].detach(), workspace)
        return heads_min_q(heads, state_parts(heads, encoding), actions, workspace)

    algorithm._monte_carlo_min_q = estimate
    return algorithm


def agreement(algorithm, observations: dict[str, Tensor], num_actions: int, seed: int) -> dict[str, float]:
    """Keep-decision flips and Pearson r of ``c``: bf16 against float32, and float32 against a second draw.

    Both estimates start from each head's first layer at a zero action (:func:`state_parts`), so
    they differ only in the hidden layer's precision.
    """
    config = algorithm.config
    heads = list(algorithm.critic_ensemble.critics)
    actor = algorithm.policy.actor
    with torch.no_grad():
        distribution = action_distribution(actor, actor.encoder(observations))
        bases = state_parts(heads, algorithm.critic_ensemble.encoder(observations))
        torch.manual_seed(seed)
        actions, log_probs = sample_with_log_prob(distribution, num_actions)
        other_actions, other_log_probs = sample_with_log_prob(distribution, num_actions)
        q_values = {
            "float32": (log_probs, heads_min_q(heads, bases, actions)),
            "bf16": (log_probs, heads_min_q(bfloat16_heads(heads), bases, actions)),
            "float32, other draw": (other_log_probs, heads_min_q(heads, bases, other_actions)),
        }
    influence, masks = {}, {}
    for name, (logp, q) in q_values.items():
        influence[name] = influence_values(
            logp.transpose(0, 1),
            q.transpose(0, 1),
            algorithm.temperature,
            estimate_form(algorithm),
            config.density_clamp,
        )
        masks[name] = entropy_bounded_mask(
            influence[name], config.influence_lower_quantile, config.influence_upper_quantile
        )[0]
    reference = influence["float32"]
    result = {}
    for name in ("bf16", "float32, other draw"):
        result[f"{name} flips"] = (masks[name] != masks["float32"]).float().mean().item()
        result[f"{name} r"] = torch.corrcoef(torch.stack([reference, influence[name]]))[0, 1].item()
    result["bf16 max |dQ| / mean |A|"] = (
        (q_values["bf16"][1] - q_values["float32"][1]).abs().max()
        / (q_values["float32"][1] - q_values["float32"][1].mean(dim=0)).abs().mean()
    ).item()
    return result


def estimate_form(algorithm) -> str:
    """The algorithm's covariance form, or ``policy_gradient`` where it uses ``first_order`` (no estimate)."""
    form = algorithm.config.influence_form
    return form if form in COVARIANCE_FORMS else "policy_gradient"


def load_snapshot_states(path: Path):
    """The algorithm and replay-batch states of an ``e2hil-bench influence-check`` snapshot."""
    from lerobot_policy_e2hil.bench.influence_check import load_snapshot

    loaded = load_snapshot(path, None)
    return loaded["algorithm"], loaded["batch"]["state"]


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` is not an E2HiL learner checkpoint, in one line (None if it is one)."""
    for part in ("algorithm/config.json", "pretrained_model/config.json"):
        if not (checkpoint / part).is_file():
            return f"--checkpoint: {checkpoint} has no {part} (a learner checkpoint: checkpoints/<step>)"
    kind = json.loads((checkpoint / "algorithm" / "config.json").read_text()).get("type")
    if kind != "e2hil":
        return f"--checkpoint: {checkpoint} is a {kind!r} run's; allowed values: an 'e2hil' run's checkpoint"
    policy = json.loads((checkpoint / "pretrained_model" / "config.json").read_text())
    cameras = [key for key, feature in policy["input_features"].items() if feature["type"] == "VISUAL"]
    if cameras:
        return f"--checkpoint: {checkpoint} is a camera run's ({', '.join(cameras)}); allowed values: a state-only run's"
    return None


def load_checkpoint_states(checkpoint: Path, config_path: str, count: int, batch_size: int):
    """The algorithm of a learner checkpoint and ``count`` batches of states from its online buffer.

    The states are read from the checkpoint's ``dataset`` and go through the policy's own
    preprocessor, as the learner's batches do.
    """
    import numpy as np
    import pandas as pd

    from lerobot_policy_e2hil.algorithm.e2hil_algorithm import E2HiLAlgorithm
    from lerobot_policy_e2hil.launcher.train import load_config
    from lerobot_policy_e2hil.sim.evaluate import load_checkpoint

    cfg = load_config(["--config_path", config_path])
    policy, preprocessor, _, _ = load_checkpoint(checkpoint / "pretrained_model", cfg.env)
    algorithm = E2HiLAlgorithm.from_pretrained(checkpoint / "algorithm", policy=policy)
    frames = pd.concat(
        pd.read_parquet(path) for path in sorted((checkpoint / "dataset").glob("data/**/*.parquet"))
    )
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        rows = torch.randperm(len(frames), generator=generator)[:batch_size].tolist()
        raw = {
            key: torch.from_numpy(np.stack(frames[key].iloc[rows].to_numpy())).float()
            for key in policy.config.input_features
        }
        batches.append(preprocessor.process_observation(raw))
    return algorithm, batches


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_timing_arguments(parser)
    parser.set_defaults(batch_size=256, updates=10, rounds=7)
    parser.add_argument("--k", type=int_at_least(2), default=8, help="E2HiL Monte Carlo actions per state")
    parser.add_argument(
        "--agreement-batches", type=positive_int, default=8, help="batches (or draws) compared"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--snapshot", type=Path, help="influence-check snapshot.pt: agreement on its trained policy"
    )
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="an e2hil sim learner checkpoint (checkpoints/<step>): agreement on it",
    )
    parser.add_argument(
        "--config_path", default="HIL-SERL/train_gym_hil_env_SIM.json", help="the checkpoint's run JSON"
    )
    args = parser.parse_args()
    if args.snapshot is not None and not args.snapshot.is_file():
        parser.error(f"--snapshot: no file {args.snapshot}")
    problem = checkpoint_problem(args.checkpoint) if args.checkpoint is not None else None
    if problem:
        parser.error(problem)
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    policy = make_policy()
    sac = build_sac(policy, True)
    algorithms = {
        "sac fast": sac,
        "e2hil fast": build_sac(copy.deepcopy(policy), True, "e2hil", num_action_samples=args.k),
        "e2hil bf16 estimate": with_bf16_estimate(
            build_sac(copy.deepcopy(policy), True, "e2hil", num_action_samples=args.k)
        ),
    }
    for algorithm in algorithms.values():
        algorithm.critic_ensemble.load_state_dict(sac.critic_ensemble.state_dict())
        algorithm.critic_target.load_state_dict(sac.critic_target.state_dict())
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(policy, args.batch_size, generator=generator) for _ in range(args.updates)]

    if args.snapshot is not None:
        subject, states = load_snapshot_states(args.snapshot)
        samples = [(states, seed) for seed in range(args.agreement_batches)]
        size = next(iter(states.values())).shape[0]
        where = f"snapshot {args.snapshot}: its replay batch of {size} states, {len(samples)} draws"
    elif args.checkpoint is not None:
        subject, state_batches = load_checkpoint_states(
            args.checkpoint, args.config_path, args.agreement_batches, args.batch_size
        )
        samples = [(states, seed) for seed, states in enumerate(state_batches)]
        where = (
            f"checkpoint {args.checkpoint}: {len(samples)} x {args.batch_size} states from its replay buffer"
        )
    else:
        subject = algorithms["e2hil fast"]
        samples = [(batches[i % len(batches)]["state"], i) for i in range(args.agreement_batches)]
        where = f"synthetic networks at initialisation: {len(samples)} x {args.batch_size} random states"
    results = [agreement(subject, states, args.k, seed) for states, seed in samples]

    contenders = {
        name: (lambda batch, a=algorithm: a.update(iter((batch,)))) for name, algorithm in algorithms.items()
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for update in contenders.values():
        time_round(update, batches[:2])
    for _ in range(args.rounds):
        for name, update in contenders.items():
            times[name].append(time_round(update, batches)[0])
    median = {name: statistics.median(values) for name, values in times.items()}

    print(
        f"torch {torch.__version__}, {args.threads} thread(s), state-only, batch {args.batch_size}, K={args.k}, "
        f"{args.rounds} rounds x {args.updates} updates, load average {os.getloadavg()[0]:.2f}"
    )
    print("CPU ms per update (median of rounds, min-max)")
    for name, value in median.items():
        print(f"{name:<20} {value:8.2f}  ({min(times[name]):.1f}-{max(times[name]):.1f})")
    for name in ("e2hil fast", "e2hil bf16 estimate"):
        print(f"E2HiL/SAC ({name:<19}) {median[name] / median['sac fast']:.3f}  (issue 14: <= 1.25)")
    print(f"agreement with the float32 estimate ({estimate_form(subject)}): {where}")
    print(f"{'':<20} {'mask flips':>22} {'Pearson r of c':>22}")
    for name in ("bf16", "float32, other draw"):
        flips = [r[f"{name} flips"] for r in results]
        corr = [r[f"{name} r"] for r in results]
        print(
            f"{name:<20} {statistics.mean(flips):9.4f} ({min(flips):.4f}-{max(flips):.4f})"
            f" {statistics.mean(corr):9.4f} ({min(corr):.4f}-{max(corr):.4f})"
        )
    ratios = [r["bf16 max |dQ| / mean |A|"] for r in results]
    print(f"bf16: largest |Q error| / mean |Q - mean_k Q| = {max(ratios):.3g}")


if __name__ == "__main__":
    main()
