"""Milliseconds per ``update()``: E2HiL vs SAC on identical batches, state-only and with images.

Both algorithms start from the same weights and consume the same pre-sampled batches. Rounds
alternate SAC and E2HiL so that machine noise hits both alike; the figure reported is the
median over rounds of the mean time per update, and the ratio of the two medians.

    python benchmarks/bench_update.py                  # CPU, both settings, both influence forms
    python benchmarks/bench_update.py --forms first_order --skip-images
    python benchmarks/bench_update.py --threads 1 --clock process   # CPU seconds: robust on a busy machine
    python benchmarks/bench_update.py --device cuda    # on a GPU machine
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from bench_fast_update import int_at_least, positive_int
from lerobot_policy_e2hil.algorithm.configuration_e2hil import INFLUENCE_FORMS
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch

CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
clock = CLOCKS["wall"]


def time_updates(algorithm, batches, device) -> float:
    """Mean milliseconds of one ``update()`` over ``batches`` (wall clock, or this process's CPU time)."""
    iterator = iter(batches)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = clock()
    for _ in range(len(batches)):
        algorithm.update(iterator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (clock() - start) * 1000 / len(batches)


def bench(
    name, policy_kwargs, batch_size, updates, rounds, k, device, form="policy_gradient"
) -> dict[str, float]:
    torch.manual_seed(0)
    policy = make_policy(device=device, **policy_kwargs)
    sac = make_rl_algorithm("sac", policy)
    e2hil = make_rl_algorithm("e2hil", copy.deepcopy(policy), num_action_samples=k, influence_form=form)
    e2hil.critic_ensemble.load_state_dict(sac.critic_ensemble.state_dict())
    generator = torch.Generator().manual_seed(0)
    batches = [_to(random_batch(policy, batch_size, generator=generator), device) for _ in range(updates)]
    time_updates(sac, batches[:2], device)  # warm-up: allocator, kernels, Adam state
    time_updates(e2hil, batches[:2], device)
    sac_ms, e2hil_ms = [], []
    for _ in range(rounds):
        sac_ms.append(time_updates(sac, batches, device))
        e2hil_ms.append(time_updates(e2hil, batches, device))
    result = {"sac_ms": statistics.median(sac_ms), "e2hil_ms": statistics.median(e2hil_ms)}
    result["ratio"] = result["e2hil_ms"] / result["sac_ms"]
    print(
        f"{name:<28} {form:<16} batch {batch_size:>4}  K={k:<3} SAC {result['sac_ms']:8.1f} ms  "
        f"E2HiL {result['e2hil_ms']:8.1f} ms  ratio {result['ratio']:.2f}",
        flush=True,
    )
    return result


def _to(batch, device):
    if device == "cpu":
        return batch
    return {
        k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
        for k, v in batch.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--image-batch-size", type=positive_int, default=256)
    parser.add_argument("--updates", type=positive_int, default=10, help="updates per timed round")
    parser.add_argument("--rounds", type=positive_int, default=5, help="alternating SAC/E2HiL rounds")
    parser.add_argument("--k", type=int_at_least(2), default=8, help="Monte Carlo actions per state")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument(
        "--forms", default="policy_gradient,first_order", help="comma-separated influence_form values"
    )
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="process: CPU time, for a machine others share",
    )
    args = parser.parse_args()
    forms = [form.strip() for form in args.forms.split(",") if form.strip()]
    unknown = [form for form in forms if form not in INFLUENCE_FORMS] or ([] if forms else [args.forms])
    if unknown:
        parser.error(
            f"--forms: {unknown[0]!r} is not an influence_form; allowed values: {list(INFLUENCE_FORMS)}"
        )
    global clock
    clock = CLOCKS[args.clock]
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, {args.clock} clock"
    )
    for form in forms:
        bench("state-only", {}, args.batch_size, args.updates, args.rounds, args.k, args.device, form)
    if not args.skip_images:
        for form in forms:
            bench(
                "2 cameras 128x128 (default)",
                {"num_cameras": 2, "image_size": 128},
                args.image_batch_size,
                max(2, args.updates // 5),
                args.rounds,
                args.k,
                args.device,
                form,
            )


if __name__ == "__main__":
    main()
