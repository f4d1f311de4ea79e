"""The default sim run over several seeds: the distribution a user should expect from `make sim`.

Runs ``e2hil-sim --config_path <config> --seed=<s> --output_dir=<runs-dir>/seed<s> [extra flags]``
for each seed, one after another (or ``--jobs`` at a time), reuses a seed whose ``summary.json``
exists, then prints and writes (``<runs-dir>/distribution.{md,json}``) every run's figures:
teacher-free success, success over the last episodes, intervention rate, updates, wall time and
whether the collapse warning fired.

    python benchmarks/sim_runs.py --seeds 1000 1001 1002 1003 1004 [--jobs 1] [-- --algorithm.selection=false]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CONFIG = "HIL-SERL/train_gym_hil_env_SIM.json"


def command(config: str, seed: int, out: Path, extra: list[str]) -> list[str]:
    """The launcher command of one seed."""
    return [
        sys.executable,
        "-m",
        "lerobot_policy_e2hil.launcher.train",
        "--config_path",
        config,
        f"--seed={seed}",
        f"--output_dir={out}",
        *extra,
    ]


def run_seeds(config: str, seeds: list[int], runs_dir: Path, extra: list[str], jobs: int) -> None:
    """Start the seeds without a summary, at most ``jobs`` at a time, each logging to ``seed<s>.log``."""
    pending = [s for s in seeds if not (runs_dir / f"seed{s}" / "summary.json").exists()]
    running: list[tuple[int, subprocess.Popen]] = []
    runs_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    while pending or running:
        while pending and len(running) < jobs:
            seed = pending.pop(0)
            out = runs_dir / f"seed{seed}"
            log = open(runs_dir / f"seed{seed}.log", "w")  # noqa: SIM115  (closed when the run ends)
            print(f"[sim_runs] seed {seed}: {' '.join(command(config, seed, out, extra))}", flush=True)
            running.append(
                (seed, subprocess.Popen(command(config, seed, out, extra), stdout=log, stderr=log, env=env))
            )
        time.sleep(5)
        for seed, proc in list(running):
            if proc.poll() is not None:
                print(f"[sim_runs] seed {seed} ended with exit code {proc.returncode}", flush=True)
                running.remove((seed, proc))


def evaluate_missing(config: str, seeds: list[int], runs_dir: Path, extra: list[str]) -> None:
    """Evaluate, as the launcher does, the runs whose summary has no teacher-free figure.

    Meant for a run whose learner crashed after its final checkpoint, which launchers before
    ``_teardown_warnings`` reported as partial without evaluating. The summary gets
    ``teacher_free_success``, ``eval_episodes`` and ``evaluated_by``.
    """
    from lerobot_policy_e2hil.launcher.train import load_config
    from lerobot_policy_e2hil.sim.evaluate import evaluate_checkpoint

    for seed in seeds:
        path = runs_dir / f"seed{seed}" / "summary.json"
        checkpoint = runs_dir / f"seed{seed}" / "checkpoints" / "last" / "pretrained_model"
        if not path.exists() or not checkpoint.exists():
            continue
        summary = json.loads(path.read_text())
        if summary.get("teacher_free_success") is not None:
            continue
        cfg = load_config(["--config_path", config, f"--seed={seed}", *extra])
        episodes = cfg.env.launch.eval_episodes
        print(
            f"[sim_runs] seed {seed}: teacher-free evaluation of {checkpoint}, {episodes} episodes",
            flush=True,
        )
        summary["teacher_free_success"] = evaluate_checkpoint(checkpoint, cfg.env, episodes)
        summary["eval_episodes"] = episodes
        summary["evaluated_by"] = "benchmarks/sim_runs.py --evaluate-missing"
        path.write_text(json.dumps(summary, indent=2))


def distribution(seeds: list[int], runs_dir: Path) -> list[dict]:
    """One row per seed with a summary."""
    rows = []
    for seed in seeds:
        path = runs_dir / f"seed{seed}" / "summary.json"
        if not path.exists():
            rows.append({"seed": seed, "missing": True})
            continue
        s = json.loads(path.read_text())
        rows.append(
            {
                "seed": seed,
                "teacher_free_success": s.get("teacher_free_success"),
                "eval_episodes": s.get("eval_episodes"),
                "success_last": s.get("success_last"),
                "intervention_rate_all": s.get("intervention_rate_all"),
                "opt_steps": s.get("opt_steps"),
                "env_steps": s.get("env_steps"),
                "total_wall_s": s.get("total_wall_s"),
                "collapse": bool(s.get("collapse")),
                "interrupted": s.get("interrupted"),
                "evaluated_after": bool(s.get("evaluated_by")),
            }
        )
    return rows


def markdown(rows: list[dict], header: str) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.0f}%"

    lines = [
        header,
        "",
        "| seed | teacher-free success | success, last 50 ep. | intervention rate | updates | env steps | wall s | collapse warning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['seed']} | not run | | | | | | |")
            continue
        lines.append(
            f"| {r['seed']} | {pct(r['teacher_free_success'])} ({r['eval_episodes']} ep.) | {pct(r['success_last'])} "
            f"| {pct(r['intervention_rate_all'])} | {r['opt_steps']} | {r['env_steps']} | {r['total_wall_s']:.0f} "
            f"| {'yes' if r['collapse'] else 'no'}{' (partial run)' if r['interrupted'] else ''}"
            f"{'; evaluated after the run (--evaluate-missing)' if r.get('evaluated_after') else ''} |"
        )
    done = [
        r["teacher_free_success"]
        for r in rows
        if not r.get("missing") and r["teacher_free_success"] is not None
    ]
    if done:
        lines += [
            "",
            f"{len(done)} runs: teacher-free success min {pct(min(done))}, median {pct(sorted(done)[len(done) // 2])}, "
            f"max {pct(max(done))}; >= 95% in {sum(v >= 0.95 for v in done)} of {len(done)}, "
            f"below 80% in {sum(v < 0.8 for v in done)}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--runs-dir", type=Path, default=Path("outputs/sim_runs"))
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each is a learner and an actor)")
    parser.add_argument("--report-only", action="store_true", help="only read the summaries")
    parser.add_argument(
        "--evaluate-missing",
        action="store_true",
        help="evaluate (as the launcher does) finished runs whose summary has no teacher-free figure",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs} is invalid; allowed values: >= 1")
    if args.evaluate_missing:
        evaluate_missing(args.config, args.seeds, args.runs_dir, extra)
    elif not args.report_only:
        run_seeds(args.config, args.seeds, args.runs_dir, extra, args.jobs)
    rows = distribution(args.seeds, args.runs_dir)
    header = f"`python benchmarks/sim_runs.py --seeds {' '.join(map(str, args.seeds))}" + (
        f" -- {' '.join(extra)}`" if extra else "`"
    )
    text = markdown(rows, header)
    (args.runs_dir / "distribution.md").write_text(text)
    (args.runs_dir / "distribution.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
