"""Throughput of one sim learner with 1, 2, 4 ... sim actors (env steps/s and updates/s).

For each actor count it starts ``python -m lerobot_policy_e2hil.launcher.learner`` and that many
``python -m lerobot_policy_e2hil.launcher.actor`` processes on loopback (the sim config, distinct
``--faults.actor_id`` and ``--env.env_seed``, as fast as they run), waits for the learner's first
update, then measures for ``--seconds`` from the learner's ``metrics.jsonl``: env steps (episode
records, all actors) and optimisation steps (train records) per second of wall time, and each
actor's share. Everything runs on this machine, so on few cores the actors and the learner
compete for them: the figures say how one machine shares out, not how robots on their own
computers would scale.

Usage: ``MUJOCO_GL=egl python benchmarks/bench_several_actors.py [--actors 1 2 4] [--seconds 120]``
(extra ``--<field>=<value>`` arguments go to the learner and the actors, e.g. ``--faults.tls_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from lerobot_policy_e2hil.launcher.children import KILL, Child, Children

ROOT = Path(__file__).resolve().parents[1]
SIM_JSON = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_records(path: Path) -> list[dict]:
    """The complete lines of a ``metrics.jsonl`` (a line being written is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def latest_wall_s(path: Path) -> float:
    """The learner's latest ``wall_s`` in ``metrics.jsonl`` (0 with no record)."""
    return max((r["wall_s"] for r in read_records(path)), default=0.0)


def rates(records: list[dict], start_s: float, end_s: float) -> dict:
    """Env steps/s, updates/s and per-actor env steps/s between two ``wall_s`` times.

    Args:
        records: The learner's metrics records.
        start_s: Start of the window (``wall_s``).
        end_s: End of the window.

    Returns:
        ``env_steps_per_s``, ``updates_per_s``, ``updates_per_env_step`` and ``per_actor``
        (actor id to env steps/s).
    """
    window = end_s - start_s
    episodes = [r for r in records if r["kind"] == "episode" and start_s < r["wall_s"] <= end_s]
    env_steps = sum(r["length"] for r in episodes)
    train = [r for r in records if r["kind"] == "train"]
    before = [r["opt_step"] for r in train if r["wall_s"] <= start_s]
    inside = [r["opt_step"] for r in train if start_s < r["wall_s"] <= end_s]
    updates = (max(inside) - (max(before) if before else 0)) if inside else 0
    per_actor: dict[str, float] = {}
    for record in episodes:
        name = record.get("actor") or "unknown"
        per_actor[name] = per_actor.get(name, 0.0) + record["length"] / window
    return {
        "env_steps_per_s": env_steps / window,
        "updates_per_s": updates / window,
        "updates_per_env_step": updates / env_steps if env_steps else None,
        "per_actor": dict(sorted(per_actor.items())),
    }


def start(children: Children, role: str, args: list[str], log: Path) -> Child:
    """``launcher.<role>`` with ``args``, its output in ``log`` (named for the log's stem)."""
    return children.start(
        log.stem, [sys.executable, "-m", f"lerobot_policy_e2hil.launcher.{role}", *args], log
    )


def wait_until(condition, timeout_s: float, what: str, processes: list[Child], logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            raise SystemExit(f"error: a process exited while waiting for {what}; logs in {logs}")
        time.sleep(0.5)
    raise SystemExit(f"error: timed out after {timeout_s:.0f} s waiting for {what}; logs in {logs}")


def measure(actors: int, seconds: float, extra: list[str], work: Path) -> dict:
    """Run one learner with ``actors`` actors and return :func:`rates` over ``seconds``."""
    port, out = free_port(), work / f"actors_{actors}"
    common = [
        "--config_path",
        str(SIM_JSON),
        f"--policy.actor_learner_config.learner_port={port}",
        "--policy.actor_learner_config.policy_parameters_push_frequency=2",
        "--log_freq=10",
        "--save_freq=1000000",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    env.setdefault("MUJOCO_GL", "egl")
    children = Children(env=env, cwd=ROOT, new_session=True)
    processes = [start(children, "learner", [*common, f"--output_dir={out}"], work / f"learner_{actors}.out")]
    metrics = out / "metrics.jsonl"
    try:
        wait_until(lambda: _listening(port), 300, "the learner", processes, work)
        for k in range(actors):
            processes.append(
                start(
                    children,
                    "actor",
                    [
                        *common,
                        "--policy.online_steps=10000000",
                        f"--faults.actor_id=actor_{k}",
                        f"--env.env_seed={k}",
                        f"--output_dir={out}/actor_{k}",
                    ],
                    work / f"actor_{actors}_{k}.out",
                )
            )
        wait_until(
            lambda: any(r["kind"] == "train" for r in read_records(metrics)), 600, "training", processes, work
        )
        begin = latest_wall_s(metrics)
        # The window is the learner's own clock: it ends at the first record at least `seconds`
        # after `begin` (on a loaded machine no record may land within `seconds` of wall time).
        wait_until(
            lambda: latest_wall_s(metrics) >= begin + seconds, seconds + 600, "the window", processes, work
        )
        records = read_records(metrics)
        return rates(records, begin, latest_wall_s(metrics))
    finally:
        children.stop_all(KILL)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    """Measure each actor count in turn and print one line per count."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4], help="actor counts to measure")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured seconds per count")
    parser.add_argument(
        "--work_dir", default=None, help="where runs and logs go (default: a temporary folder)"
    )
    args, extra = parser.parse_known_args()
    if any(n < 1 for n in args.actors) or args.seconds <= 0:
        raise SystemExit("error: --actors must be >= 1 and --seconds > 0")
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_actors_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"one learner, N sim actors, {args.seconds:.0f} s each, {os.cpu_count()} CPUs; logs in {work}")
    print("actors | env steps/s | updates/s | updates per env step | env steps/s per actor")
    for actors in args.actors:
        result = measure(actors, args.seconds, extra, work)
        ratio = result["updates_per_env_step"]
        shares = ", ".join(f"{name} {value:.1f}" for name, value in result["per_actor"].items())
        print(
            f"{actors:>6} | {result['env_steps_per_s']:>11.1f} | {result['updates_per_s']:>9.2f} | "
            f"{(f'{ratio:.3f}' if ratio is not None else '-'):>20} | {shares}",
            flush=True,
        )
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
