"""Seconds to write a replay buffer as a LeRobot dataset, as the learner's checkpoint does.

LeRobot 0.6.1's checkpoint (``save_training_checkpoint``) writes the online and the offline
replay buffer with ``ReplayBuffer.to_lerobot_dataset``: one ``add_frame`` per transition, one
``save_episode`` per episode. Two contenders write the same buffer, in alternating rounds in one
process so that machine load hits them alike:

* ``lerobot``: LeRobot's ``save_episode`` as it is (``io_utils.embed_images`` maps
  ``embed_table_storage`` over every row);
* ``fixed``: with the plugin's fix (``lerobot_fixes.install_embed_skip_fix``), which returns an
  episode without image or audio features unchanged instead.

The buffer is the default sim run's at its last checkpoint: state-only (18-D state, 3-D cube
position, 4-D action with the gripper, the actor's complementary info), 25,000 transitions in
episodes of 30 steps (the run's mean). Figures: median over rounds, wall and CPU time of the
process (``time.process_time``), per buffer and per episode, and the ratio of the medians. The
written tables are compared at the end (same columns, types and values).

    python benchmarks/experiments/bench_buffer_save.py
    python benchmarks/experiments/bench_buffer_save.py --transitions 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from lerobot.rl.buffer import ReplayBuffer

from lerobot_policy_e2hil.lerobot_layer import fixes as lerobot_fixes
from lerobot_policy_e2hil.lerobot_layer import patches
from lerobot_policy_e2hil.synthetic import state_only_replay_buffer

CONTENDERS = ("lerobot", "fixed")


def write(buffer: ReplayBuffer, root: Path, fixed: bool) -> tuple[float, float]:
    """Write ``buffer`` under ``root`` with or without the fix; (wall s, CPU s)."""
    shutil.rmtree(root, ignore_errors=True)
    with patches.isolated_hooks():
        if not fixed:
            patches.unhook(lerobot_fixes.EMBED_IMAGES, "fixes")
        wall, cpu = time.perf_counter(), time.process_time()
        buffer.to_lerobot_dataset("local/bench_buffer", fps=10, root=root)
        return time.perf_counter() - wall, time.process_time() - cpu


def same_tables(first: Path, second: Path) -> bool:
    """Whether the parquet tables under the two roots hold the same columns, types and values."""
    paths = sorted(path.relative_to(first) for path in first.rglob("*.parquet"))
    if paths != sorted(path.relative_to(second) for path in second.rglob("*.parquet")):
        return False
    return all(pq.read_table(first / path).equals(pq.read_table(second / path)) for path in paths)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transitions", type=int, default=25_000, help="transitions in the buffer")
    parser.add_argument("--episode-length", type=int, default=30, help="steps per episode")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per contender")
    args = parser.parse_args(argv)
    if args.transitions < 1 or args.episode_length < 1 or args.rounds < 1:
        parser.error("--transitions, --episode-length and --rounds must be >= 1")

    lerobot_fixes.install_embed_skip_fix()
    buffer = state_only_replay_buffer(args.transitions, args.episode_length)
    episodes = -(-args.transitions // args.episode_length)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="bench_buffer_save_") as scratch:
        for round_index in range(args.rounds):
            order = CONTENDERS if round_index % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                times[name].append(write(buffer, Path(scratch) / name, fixed=name == "fixed"))
                wall, cpu = times[name][-1]
                print(
                    f"round {round_index + 1}/{args.rounds} {name:8s} wall {wall:7.2f} s  cpu {cpu:7.2f} s",
                    flush=True,
                )
        same = same_tables(Path(scratch) / "lerobot", Path(scratch) / "fixed")

    print(
        f"\n{args.transitions} transitions, {episodes} episodes of {args.episode_length} steps, {args.rounds} rounds"
    )
    print(f"{'contender':10s} {'wall s':>8s} {'cpu s':>8s} {'wall ms/episode':>16s}")
    medians = {}
    for name in CONTENDERS:
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        medians[name] = (wall, cpu)
        print(f"{name:10s} {wall:8.2f} {cpu:8.2f} {1000 * wall / episodes:16.1f}")
    print(
        f"lerobot / fixed: wall {medians['lerobot'][0] / medians['fixed'][0]:.2f}x, "
        f"cpu {medians['lerobot'][1] / medians['fixed'][1]:.2f}x"
    )
    print(f"same tables (columns, types, values): {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
