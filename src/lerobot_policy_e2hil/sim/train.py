"""One command for headless human-in-the-loop training in gym_hil.

``python -m lerobot_policy_e2hil.sim.train --config_path HIL-SERL/train_gym_hil_env_SIM.json [--a.b=c ...]``

Starts LeRobot's learner and actor (through :mod:`.learner` and :mod:`.actor`) as two processes
talking gRPC on 127.0.0.1 on a free port, prints progress from the learner's ``metrics.jsonl``,
stops when the actor has spent ``policy.online_steps`` env steps, then evaluates the final
policy teacher-free (:mod:`.evaluate`) and writes ``summary.json`` and ``plots/*.png`` next to
``checkpoints/``. Ctrl-C stops both processes; the learner writes a final checkpoint on the way out.

``--resume=true --output_dir=<run>`` continues an interrupted run from its newest complete
checkpoint: the learner resumes (LeRobot's ``--resume``, with :mod:`..faults`), and a new actor
runs the env steps left of ``policy.online_steps``. ``--faults.*`` flags go to both processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..faults.settings import FLAG_PREFIX, split_fault_args
from .hooks import METRICS_FILE, RUN_START_ENV
from .report import episode_stats, progress_line, read_metrics, write_plots

PORT_FLAG = "--policy.actor_learner_config.learner_port"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flag_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def load_config(args: list[str]) -> Any:
    """Parse the training config the way the learner will (``--config_path`` plus dotted flags)."""
    import draccus
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    config_path = _flag_value(args, "--config_path")
    rest = [a for i, a in enumerate(args) if not _is_config_path_arg(args, i)]
    return draccus.parse(TrainRLServerPipelineConfig, config_path=config_path, args=rest)


def _without(args: list[str], name: str) -> list[str]:
    """``args`` without the flag ``name`` (``name=value`` or ``name value``)."""
    kept, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == name:
            skip = i + 1 < len(args) and not args[i + 1].startswith("--")
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept


def _is_config_path_arg(args: list[str], i: int) -> bool:
    arg = args[i]
    return arg.startswith("--config_path") or (i > 0 and args[i - 1] == "--config_path")


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.5)
    return False


def _stop(process: subprocess.Popen, timeout_s: float) -> int:
    """One SIGINT (LeRobot's handler shuts down cleanly on the first), then SIGKILL after a timeout."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _fault_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """The ``--faults.*`` flags, validated and normalised, and the other arguments."""
    settings, rest = split_fault_args(args)
    flags = [f"{FLAG_PREFIX}{f.name}={getattr(settings, f.name)}" for f in dataclasses.fields(settings)]
    return flags, rest


def _resume_budget(cfg: Any, output_dir: Path) -> int:
    """Env steps left to the actor of a resumed run; exits with a message when there is nothing to do."""
    from ..faults.checkpoints import newest_complete, read_marker

    checkpoint = newest_complete(output_dir)
    if checkpoint is None:
        raise SystemExit(
            f"[e2hil-sim] --resume=true but {output_dir}/checkpoints has no complete checkpoint; "
            "start a new run without --resume"
        )
    done = int(read_marker(checkpoint).get("interaction_step") or 0)
    remaining = cfg.policy.online_steps - done
    if remaining <= 0:
        raise SystemExit(
            f"[e2hil-sim] {checkpoint} already has {done} env steps of policy.online_steps="
            f"{cfg.policy.online_steps}; raise --policy.online_steps to train longer"
        )
    print(f"[e2hil-sim] resuming from {checkpoint} ({done} env steps done, {remaining} to go)")
    return remaining


def _actor_output_dir(output_dir: Path, resume: bool) -> Path:
    """``<output_dir>/actor``, or a new ``actor-resume<N>`` (LeRobot refuses an existing one)."""
    if not resume:
        return output_dir / "actor"
    n = 1
    while (output_dir / f"actor-resume{n}").exists():
        n += 1
    return output_dir / f"actor-resume{n}"


def run(args: list[str]) -> dict[str, Any]:
    """Run one training session; returns the summary (also written to ``summary.json``)."""
    import lerobot_policy_e2hil  # noqa: F401  (registers e2hil and e2hil_sim before parsing)

    fault_flags, args = _fault_flags(args)
    cfg = load_config(args)
    output_dir = (
        Path(cfg.output_dir)
        if cfg.output_dir
        else (Path("outputs/e2hil_sim") / f"{dt.datetime.now():%Y-%m-%d_%H-%M-%S}_{cfg.job_name or 'run'}")
    )
    resume = bool(cfg.resume)
    if resume and not cfg.output_dir:
        raise SystemExit("[e2hil-sim] --resume=true needs --output_dir=<the run to resume>")
    if not resume and output_dir.exists():
        raise SystemExit(
            f"Output directory {output_dir} already exists; choose another --output_dir "
            "(or add --resume=true to continue that run)"
        )
    actor_args = [f"--policy.online_steps={_resume_budget(cfg, output_dir)}"] if resume else []
    launch = cfg.env.launch
    passthrough = _without(_without(args, "--output_dir"), "--resume") + fault_flags
    port = int(_flag_value(args, PORT_FLAG) or free_port())
    if _flag_value(args, PORT_FLAG) is None:
        passthrough.append(f"{PORT_FLAG}={port}")
    env = {**os.environ, RUN_START_ENV: str(time.time())}
    env.setdefault("MUJOCO_GL", "egl")
    start = time.time()
    print(
        f"[e2hil-sim] output {output_dir} | learner on 127.0.0.1:{port} | budget {cfg.policy.online_steps} steps"
    )

    logs = output_dir.parent / f".{output_dir.name}.launch"
    logs.mkdir(parents=True, exist_ok=True)
    log_files = []

    def spawn(role: str, role_output_dir: Path, extra: list[str]) -> subprocess.Popen:
        """Start ``sim.<role>`` with the user's arguments, its output in ``<logs>/<role>.out``."""
        log_files.append(open(logs / f"{role}.out", "a" if resume else "w"))  # noqa: SIM115  (closed in finally)
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"lerobot_policy_e2hil.sim.{role}",
                *passthrough,
                *extra,
                f"--output_dir={role_output_dir}",
            ],
            stdout=log_files[-1],
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    learner = spawn("learner", output_dir, ["--resume=true"] if resume else [])
    actor = None
    interrupted = False
    try:
        if not _wait_for_port(port, learner, timeout_s=300):
            raise RuntimeError(f"learner did not start; see {logs / 'learner.out'}")
        actor = spawn("actor", _actor_output_dir(output_dir, resume), actor_args)
        next_print = time.monotonic() + launch.progress_interval_s
        while actor.poll() is None:
            if learner.poll() is not None:
                raise RuntimeError(
                    f"learner exited early; see {logs / 'learner.out'}. Continue the run from its last "
                    f"checkpoint with the same command plus --resume=true --output_dir={output_dir}"
                )
            time.sleep(0.5)
            if time.monotonic() >= next_print:
                stats = episode_stats(read_metrics(output_dir / METRICS_FILE), launch.summary_window)
                print(progress_line(stats, time.time() - start), flush=True)
                next_print += launch.progress_interval_s
    except KeyboardInterrupt:
        interrupted = True
        print("\n[e2hil-sim] Ctrl-C: stopping actor and learner (the learner saves a last checkpoint)")
    finally:
        if actor is not None:
            _stop(actor, launch.stop_timeout_s)
        learner_rc = _stop(learner, launch.stop_timeout_s)
        for log_file in log_files:
            log_file.close()
    train_wall = time.time() - start

    records = read_metrics(output_dir / METRICS_FILE)
    stats = episode_stats(records, launch.summary_window)
    checkpoint = output_dir / "checkpoints" / "last" / "pretrained_model"
    eval_success = None
    if launch.eval_episodes > 0 and checkpoint.exists() and not interrupted:
        from .evaluate import evaluate_checkpoint

        print(f"[e2hil-sim] teacher-free evaluation: {launch.eval_episodes} episodes")
        eval_success = evaluate_checkpoint(checkpoint, cfg.env, launch.eval_episodes)
    plots = write_plots(records, output_dir / "plots") if records else []
    summary = {
        **stats,
        "teacher_free_success": eval_success,
        "eval_episodes": launch.eval_episodes if eval_success is not None else 0,
        "train_wall_s": round(train_wall, 1),
        "total_wall_s": round(time.time() - start, 1),
        "interrupted": interrupted,
        "learner_exit_code": learner_rc,
        "checkpoint": str(checkpoint) if checkpoint.exists() else None,
        "metrics": str(output_dir / METRICS_FILE),
        "plots": [str(p) for p in plots],
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    """Print the end-of-run summary."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    print("[e2hil-sim] ---------------- summary ----------------")
    print(f"  env steps                      {summary['env_steps']} ({summary['episodes']} episodes)")
    print(f"  learner updates                {summary['opt_steps']}")
    print(f"  success, last {summary['window']} episodes       {pct(summary['success_last'])}")
    print(
        f"  teacher-free success           {pct(summary['teacher_free_success'])}"
        f" ({summary['eval_episodes']} episodes)"
    )
    print(f"  intervention rate (all steps)  {pct(summary['intervention_rate_all'])}")
    print(f"  intervention rate (last {summary['window']})   {pct(summary['intervention_rate_last'])}")
    print(
        f"  wall time                      {summary['train_wall_s']:.0f} s training, {summary['total_wall_s']:.0f} s total"
    )
    print(f"  checkpoint                     {summary['checkpoint']}")


def main() -> None:
    """Console entry: ``e2hil-sim --config_path ... [dotted overrides]``."""
    summary = run(sys.argv[1:])
    if summary["checkpoint"] is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
