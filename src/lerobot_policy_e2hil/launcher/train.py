"""One command for headless human-in-the-loop training in gym_hil.

``python -m lerobot_policy_e2hil.launcher.train --config_path HIL-SERL/train_gym_hil_env_SIM.json [--a.b=c ...]``

Starts LeRobot's learner and actor (through :mod:`.learner` and :mod:`.actor`) as two processes
talking gRPC on 127.0.0.1 on a free port, prints progress from the learner's ``metrics.jsonl``,
stops when the actor has spent ``policy.online_steps`` env steps, then evaluates the final
policy teacher-free (:mod:`..sim.evaluate`) and writes ``summary.json`` and ``plots/*.png`` next to
``checkpoints/``. Ctrl-C, SIGTERM and SIGHUP stop both processes (the learner writes a final
checkpoint on the way out); if the launcher itself is killed, the kernel sends them SIGTERM.

The launcher reads both exit statuses: a dead actor, a learner that failed or ended by itself,
or a stop signal make a partial run (``interrupted: true`` and ``reason`` in ``summary.json``,
exit code 1, no evaluation). A bad command line or setup ends with one ``error: <cause>. <fix>``
line and exit code 2, before anything starts; a learner that fails to start leaves no output
directory behind unless it holds a checkpoint, so the same command can run again.

``--resume=true --output_dir=<run>`` continues an interrupted run from its newest checkpoint
that verifies: the learner resumes (LeRobot's ``--resume``, with :mod:`..faults`), and a new
actor runs the env steps left of ``policy.online_steps``. ``--faults.*`` flags go to both processes.

``--env.launch.num_actors=N`` (N > 1) starts N sim actors on the one learner: actor ``k`` is
``--faults.actor_id=actor_<k>`` with ``--env.env_seed=<env_seed + k>``, runs
``ceil(policy.online_steps / N)`` env steps (on resume, of the steps left) in
``<output_dir>/actor_<k>`` (``actor_<k>-resume<n>``) and logs to ``actor_<k>.out``; the run ends
when every actor has ended, and each actor's exit is checked as the single actor's is. The
learner gets ``--faults.grpc_workers=max(16, 3N + 4)`` unless the command line sets it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..checkpoints import choose_checkpoint, newest_complete, read_marker
from ..errors import EXIT_SETUP, ConfigError, SetupError, describe_error, exit_on_setup_error, one_line
from ..faults.entry import EXIT_FATAL
from ..faults.settings import FLAG_PREFIX, FaultSettings
from ..setup_checks import check_config, check_port_free, check_retired_switches, listens_on
from .children import Child, Children, Escalation
from .hooks import FINAL_CHECKPOINT, METRICS_FILE, RUN_START_ENV
from .parent import LAUNCHER_PID_ENV
from .report import (
    collapse_text,
    episode_stats,
    progress_line,
    read_metrics,
    teacher_dependence,
    teacher_dependence_text,
    write_plots,
)

PORT_FLAG = "--policy.actor_learner_config.learner_port"
SIM_ENV_TYPE = "e2hil_sim"
# The sim actor logs this once its env-step budget is spent (launcher.hooks); an exit without it is early
BUDGET_SPENT = "[ACTOR] Step budget spent"
# Longest wait for the learner to listen (imports, policy build, buffer load on resume)
LEARNER_START_TIMEOUT_S = 300.0


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

    from ..train_config import E2HiLTrainConfig

    config_path = _flag_value(args, "--config_path")
    rest = [a for i, a in enumerate(args) if not _is_config_path_arg(args, i)]
    try:
        return draccus.parse(E2HiLTrainConfig, config_path=config_path, args=rest, exit_on_error=False)
    except Exception as err:  # argparse's usage dump is not printed: one line names the mistake
        message = describe_error(err, config_path, E2HiLTrainConfig, rest)
        if message is None or isinstance(err, (ConfigError, SetupError)):
            raise
        raise ConfigError(message) from None


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


class Interrupted(Exception):
    """The launcher received SIGINT, SIGTERM or SIGHUP; it stops its learner and actor."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class _Signals:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` once; later ones only say the stop is under way.

    Without this, SIGTERM or SIGHUP (``timeout``, a closed ssh session, a service stop) ended the
    launcher at once and left its learner and actor running (they are in their own session, so
    the terminal's signals do not reach them). SIGKILL cannot be caught: the children get SIGTERM
    from the kernel then (:mod:`.children`).
    """

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.raised = False
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for name in self.NAMES:
            number = getattr(signal, name, None)
            if number is not None:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = self.received or signum
        if self.raised:
            print(f"[e2hil-sim] {signal.Signals(signum).name}: already stopping, please wait", flush=True)
            return
        self.raised = True
        raise Interrupted(signum)

    def hold(self) -> None:
        """From now on signals are only noted (``received``): the stop under way must not be cut short."""
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _wait_for_learner(port: int, learner: Child, timeout_s: float, interval_s: float, start: float) -> bool:
    """Wait until OUR learner listens on ``port``, printing a "starting" line every ``interval_s``.

    The port being open is not enough: another program may hold it. The learner must be alive
    and own the listening socket (:func:`~..setup_checks.listens_on`; on systems without
    ``/proc``, an open port is taken as ready).

    Returns:
        True once it listens; False when the learner exited first.

    Raises:
        LaunchError: The learner was not listening after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    next_print = time.monotonic() + interval_s
    while time.monotonic() < deadline:
        if learner.poll() is not None:
            return False
        owned = listens_on(learner.pid, port)
        if owned or (owned is None and _port_open(port)):
            return True
        if time.monotonic() >= next_print:
            print(
                f"[e2hil-sim {time.time() - start:7.0f}s] starting: learner loading, not listening yet",
                flush=True,
            )
            next_print += interval_s
        time.sleep(0.5)
    raise LaunchError(
        f"the learner did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s (a very slow start, or "
        "another program took the port)",
        EXIT_FATAL,
    )


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_escalation(timeout_s: float) -> Escalation:
    """One SIGINT (LeRobot's handler shuts down cleanly on the first), then SIGKILL after ``timeout_s``."""
    return Escalation.then_kill(signal.SIGINT, timeout_s)


def _say_killing(child: Child, waited_s: float, next_signal: int) -> None:
    print(f"[e2hil-sim] pid {child.pid} did not stop within {waited_s:.0f} s; killing it", flush=True)


class LaunchError(Exception):
    """A run that could not start or did not finish; the message is ``<cause>. <fix>``.

    Args:
        message: What went wrong.
        code: The launcher's exit code.
    """

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _log_text(log: Path, offset: int = 0) -> str:
    """What a process wrote to ``log`` from byte ``offset`` on (this launch's part of an appended log)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _error_line(text: str) -> str | None:
    """The last ``error: ...`` line a learner or actor printed, without the prefix."""
    errors = [line[len("error: ") :].strip() for line in text.splitlines() if line.startswith("error: ")]
    return errors[-1] if errors else None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _check_env_type(args: list[str]) -> None:
    """Refuse, naming the allowed value, an env other than the sim (draccus' message is 10 lines)."""
    from lerobot.configs import parser

    name = parser.parse_arg("env.type", args)
    path = parser.parse_arg("config_path", args)
    if name is None and path is not None:
        try:
            env = json.loads(Path(path).read_text()).get("env")
        except (OSError, ValueError, AttributeError):
            return  # a missing or malformed file: the parser reports it
        name = env.get("type") if isinstance(env, dict) else None
    if name is not None and name != SIM_ENV_TYPE:
        raise ConfigError(
            f"env.type={name!r} is invalid for e2hil-sim; allowed values: {SIM_ENV_TYPE!r}. "
            "Use e2hil-learner and e2hil-actor for other envs (robots)."
        )


def _writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".e2hil-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SetupError(
            f"cannot write to {path} ({err.strerror or err}). Choose a writable --output_dir."
        ) from None


def _settings_flags(settings: FaultSettings) -> list[str]:
    """The ``--faults.*`` flags of validated ``settings`` (every field), as both processes get them.

    Booleans are written ``true``/``false``: with ``--config_path`` LeRobot's parser reads flag
    values as JSON, which has no ``True``.
    """
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return [
        f"{FLAG_PREFIX}{name}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in values.items()
    ]


def grpc_workers(num_actors: int) -> int:
    """The learner's gRPC threads for ``num_actors`` actors: 3 streams each, 4 spare, at least 16."""
    return max(FaultSettings.grpc_workers, 3 * num_actors + 4)


def actor_names(num_actors: int) -> list[str]:
    """The actors' names: ``actor`` alone (as before several actors), else ``actor_0`` ... ``actor_<N-1>``."""
    return ["actor"] if num_actors == 1 else [f"actor_{k}" for k in range(num_actors)]


def actor_budget(budget: int, num_actors: int) -> int:
    """Env steps of each of ``num_actors`` actors that share ``budget``."""
    return math.ceil(budget / num_actors)


def actor_flags(
    k: int, num_actors: int, settings: FaultSettings, env_seed: int, budget_flags: list[str]
) -> list[str]:
    """Actor ``k``'s own flags, after the user's (the last of a repeated flag wins).

    Its ``--faults.*`` flags, with ``--faults.actor_id=actor_<k>`` and ``--env.env_seed=<env_seed + k>``
    when there are several actors, then ``budget_flags`` (its ``--policy.online_steps``, if any).
    A single actor is ``--faults.actor_id=actor`` unless the user named it, so a resumed run's
    actor keeps its id (the default ``<host>-<pid>`` changes with each process) and the summary
    lists one actor.
    """
    if num_actors == 1:
        own = settings if settings.actor_id else dataclasses.replace(settings, actor_id=actor_names(1)[0])
        return _settings_flags(own) + budget_flags
    own = dataclasses.replace(settings, actor_id=actor_names(num_actors)[k])
    return [*_settings_flags(own), f"--env.env_seed={env_seed + k}", *budget_flags]


def _resume_budget(cfg: Any, output_dir: Path) -> int:
    """Env steps left to the actor of a resumed run.

    Raises:
        SetupError: No checkpoint verifies, or the budget is already spent.
    """
    checkpoint, skipped = choose_checkpoint(output_dir)
    for damaged, reason in skipped:
        print(
            f"[e2hil-sim] skipping damaged checkpoint {damaged}: {reason}; falling back to the previous one"
        )
    if checkpoint is None:
        raise SetupError(
            f"--resume=true but {output_dir}/checkpoints has no complete checkpoint that verifies. "
            "Start a new run without --resume (in a new --output_dir)"
        )
    done = int(read_marker(checkpoint).get("interaction_step") or 0)
    remaining = cfg.policy.online_steps - done
    if remaining <= 0:
        raise SetupError(
            f"{checkpoint} already has {done} env steps of policy.online_steps={cfg.policy.online_steps}. "
            "Raise --policy.online_steps to train longer"
        )
    print(f"[e2hil-sim] resuming from {checkpoint} ({done} env steps done, {remaining} to go)")
    return remaining


def _actor_output_dir(output_dir: Path, resume: bool, name: str = "actor") -> Path:
    """``<output_dir>/<name>``, or a new ``<name>-resume<N>`` (LeRobot refuses an existing one)."""
    if not resume:
        return output_dir / name
    n = 1
    while (output_dir / f"{name}-resume{n}").exists():
        n += 1
    return output_dir / f"{name}-resume{n}"


def _resume_advice(output_dir: Path) -> str:
    if newest_complete(output_dir) is None:
        return f"{output_dir} has no checkpoint that verifies, so there is nothing to resume"
    return f"continue the run with the same command plus --resume=true --output_dir={output_dir}"


def _finish_failed_start(output_dir: Path, created: bool, logs: Path) -> str:
    """After a failed start: remove the output dir this launch created when nothing in it can be resumed."""
    if created and output_dir.exists() and newest_complete(output_dir) is None:
        shutil.rmtree(output_dir, ignore_errors=True)
        return (
            f"nothing was checkpointed, so {output_dir} was removed and the same command can run again "
            f"(logs and summary.json: {logs})"
        )
    return _resume_advice(output_dir)


def camera_cpu_note(image_obs: bool, device: str) -> str | None:
    """The line printed when the camera sim would train on the CPU, or None.

    Args:
        image_obs: Whether the env renders the two cameras (``env.image_obs``).
        device: The policy's device after LeRobot's fallback (``cpu`` when no GPU is found).
    """
    if not image_obs or device.startswith("cuda"):
        return None
    return (
        f"[e2hil-sim] note: cameras on {device}: the camera config is meant for a GPU machine; here every env "
        "step renders two cameras in software and updates take seconds, so this run is a smoke check "
        "(docs/sim.md, 'Cameras')"
    )


def run(args: list[str]) -> dict[str, Any]:
    """Run one training session; returns the summary (also written to ``summary.json``).

    Raises:
        ConfigError, SetupError: A bad command line or setup (exit code 2).
        LaunchError: The learner did not start (nothing to summarise).
    """
    import lerobot_policy_e2hil  # noqa: F401  (registers e2hil and e2hil_sim before parsing)

    user_workers = any(a.startswith(f"{FLAG_PREFIX}grpc_workers") for a in args)
    check_retired_switches()
    _check_env_type(args)
    cfg = load_config(args)
    fault_settings = cfg.faults
    if getattr(cfg.env, "type", None) != SIM_ENV_TYPE:
        _check_env_type([f"--env.type={getattr(cfg.env, 'type', None)}"])
    check_config(cfg, "learner")
    output_dir = (
        Path(cfg.output_dir)
        if cfg.output_dir
        else (Path("outputs/e2hil_sim") / f"{dt.datetime.now():%Y-%m-%d_%H-%M-%S}_{cfg.job_name or 'run'}")
    )
    resume = bool(cfg.resume)
    if resume and not cfg.output_dir:
        raise SetupError("--resume=true needs the run to resume. Add --output_dir=<the run's directory>.")
    if output_dir.exists() and not os.access(output_dir, os.W_OK | os.X_OK):
        raise SetupError(
            f"the output directory {output_dir} exists but is not writable (read-only, or owned by another "
            "user). Choose a new --output_dir, or make it writable (chmod u+w) before resuming it with "
            "--resume=true"
        )
    if not resume and output_dir.exists():
        raise SetupError(
            f"the output directory {output_dir} already exists. Choose another --output_dir, or add "
            "--resume=true to continue that run"
        )
    launch = cfg.env.launch
    num_actors = launch.num_actors
    actor_steps = _resume_budget(cfg, output_dir) if resume else cfg.policy.online_steps
    actor_args = (
        [f"--policy.online_steps={actor_budget(actor_steps, num_actors)}"] if resume or num_actors > 1 else []
    )
    if num_actors > 1 and not user_workers:
        fault_settings = dataclasses.replace(fault_settings, grpc_workers=grpc_workers(num_actors))
    passthrough = _without(_without(args, "--output_dir"), "--resume")
    given_port = _flag_value(args, PORT_FLAG)
    port = int(given_port or free_port())
    if given_port is None:
        passthrough.append(f"{PORT_FLAG}={port}")
    else:
        check_port_free("127.0.0.1", port)
    from ..sim.evaluate import check_can_render

    check_can_render(cfg.env)  # the learner, the actors and the evaluation render as this process does
    logs = output_dir.parent / f".{output_dir.name}.launch"
    _writable_dir(logs)
    created = not output_dir.exists()
    env = {**os.environ, RUN_START_ENV: str(time.time()), LAUNCHER_PID_ENV: str(os.getpid())}
    start = time.time()
    budget = cfg.policy.online_steps
    names = actor_names(num_actors)
    print(
        f"[e2hil-sim] output {output_dir} | learner on 127.0.0.1:{port} | budget {budget} env steps"
        + (
            f" | {num_actors} actors, {actor_budget(actor_steps, num_actors)} env steps each"
            if num_actors > 1
            else ""
        )
    )
    note = camera_cpu_note(bool(cfg.env.image_obs), str(cfg.policy.device))
    if note:
        print(note, flush=True)
    children = Children(env=env, new_session=True)
    offsets: dict[str, int] = {}

    def spawn(role: str, name: str, role_output_dir: Path, extra: list[str]) -> Child:
        """Start ``launcher.<role>`` with the user's arguments, its output in ``<logs>/<name>.out``."""
        argv = [
            sys.executable,
            "-m",
            f"lerobot_policy_e2hil.launcher.{role}",
            *passthrough,
            *extra,
            f"--output_dir={role_output_dir}",
        ]
        child = children.start(name, argv, logs / f"{name}.out", append=resume)
        offsets[name] = child.offset
        return child

    learner = None
    actors: dict[str, Child] = {}
    reasons: list[str] = []
    started = False
    with _Signals() as signals:
        try:
            learner = spawn(
                "learner",
                "learner",
                output_dir,
                _settings_flags(fault_settings) + (["--resume=true"] if resume else []),
            )
            started = _wait_for_learner(
                port, learner, LEARNER_START_TIMEOUT_S, launch.progress_interval_s, start
            )
            if started:
                for k, name in enumerate(names):
                    actors[name] = spawn(
                        "actor",
                        name,
                        _actor_output_dir(output_dir, resume, name),
                        actor_flags(k, num_actors, fault_settings, cfg.env.env_seed, actor_args),
                    )
            next_print = time.monotonic() + launch.progress_interval_s
            while actors and any(a.poll() is None for a in actors.values()) and learner.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_print:
                    stats = episode_stats(
                        read_metrics(output_dir / METRICS_FILE), launch.summary_window, launch.collapse_drop
                    )
                    print(progress_line(stats, time.time() - start), flush=True)
                    next_print += launch.progress_interval_s
        except Interrupted as stop:
            reasons.append(f"the launcher was {stop}")
            print(
                f"\n[e2hil-sim] {stop}: stopping {'actor' if num_actors == 1 else 'actors'} and learner "
                "(the learner saves a last checkpoint)"
            )
        except LaunchError as err:
            reasons.append(str(err))
        finally:
            signals.hold()
            actors_early = {name: a.poll() for name, a in actors.items()}
            learner_early = learner.poll() if learner is not None else None
            how = _stop_escalation(launch.stop_timeout_s)
            # from the table of started children: a stop signal may come between a start and its assignment
            started_actors = [name for name in children.names() if name != "learner"]
            actor_codes = children.stop(started_actors, how, _say_killing)
            learner_rc = (
                children.stop(["learner"], how, _say_killing)["learner"] if "learner" in children else None
            )
        if signals.received is not None and not reasons:
            reasons.append(f"the launcher was stopped by {signal.Signals(signals.received).name}")
    train_wall = time.time() - start
    texts = {role: _log_text(logs / f"{role}.out", offset) for role, offset in offsets.items()}
    reasons += _run_reasons(texts, logs, actors_early, learner_early, learner_rc, bool(reasons))
    actor_rc = next((c for c in actor_codes.values() if c != 0), 0) if actor_codes else None
    warnings = _teardown_warnings(texts, learner_early, learner_rc)
    if not started:
        code = EXIT_SETUP if learner_rc == EXIT_SETUP else EXIT_FATAL
        message = "; ".join(reasons) or "the learner did not start"
        advice = (
            f"{output_dir} is unchanged; fix what the learner says, then resume again"
            if resume
            else _finish_failed_start(output_dir, created, logs)
        )  # a resume that failed at its start is not advised again
        raise LaunchError(f"{message}. {advice}", code)

    records = read_metrics(output_dir / METRICS_FILE)
    stats = episode_stats(records, launch.summary_window, launch.collapse_drop)
    checkpoint = output_dir / "checkpoints" / "last" / "pretrained_model"
    eval_success = None
    if launch.eval_episodes > 0 and checkpoint.exists() and not reasons:
        from ..sim.evaluate import evaluate_checkpoint

        print(f"[e2hil-sim] teacher-free evaluation: {launch.eval_episodes} episodes")
        with _Signals():
            try:
                eval_success = evaluate_checkpoint(checkpoint, cfg.env, launch.eval_episodes)
            except Interrupted as stop:
                reasons.append(f"the evaluation was {stop}")
    # A partial run with nothing to resume would block the same command ("already exists").
    discard = bool(reasons) and created and newest_complete(output_dir) is None
    plots = (
        write_plots(records, output_dir / "plots", log_freq=cfg.log_freq) if records and not discard else []
    )
    summary = {
        **stats,
        "env_step_budget": budget,
        "teacher_free_success": eval_success,
        "teacher_dependence": teacher_dependence(eval_success, stats.get("success_last"), launch.teacher_gap),
        "eval_episodes": launch.eval_episodes if eval_success is not None else 0,
        "train_wall_s": round(train_wall, 1),
        "total_wall_s": round(time.time() - start, 1),
        "interrupted": bool(reasons),
        "reason": "; ".join(reasons) or None,
        "advice": (_finish_failed_start(output_dir, created, logs) if discard else _resume_advice(output_dir))
        if reasons
        else None,
        "warnings": warnings,
        "learner_exit_code": learner_rc,
        "actor_exit_code": actor_rc,
        **({"num_actors": num_actors, "actor_exit_codes": actor_codes} if num_actors > 1 else {}),
        "checkpoint": str(checkpoint) if checkpoint.exists() else None,
        "metrics": str(output_dir / METRICS_FILE),
        "plots": [str(p) for p in plots],
    }
    summary_dir = logs if discard else output_dir
    summary_dir.mkdir(parents=True, exist_ok=True)
    (summary_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return summary


def _process_reasons(
    texts: dict[str, str],
    logs: Path,
    actor_early: int | None,
    learner_early: int | None,
    actor_rc: int | None,
    learner_rc: int | None,
    stopped: bool,
) -> list[str]:
    """Why a run with one actor is partial (:func:`_run_reasons` for the actor named ``actor``)."""
    return _run_reasons(texts, logs, {"actor": actor_early}, learner_early, learner_rc, stopped)


def _run_reasons(
    texts: dict[str, str],
    logs: Path,
    actors_early: dict[str, int | None],
    learner_early: int | None,
    learner_rc: int | None,
    stopped: bool,
) -> list[str]:
    """Why the run is partial, from the exit statuses of the actors and the learner.

    ``*_early`` is the status of a process that ended by itself before the launcher stopped it
    (None: still running then), per actor name (its log is ``<logs>/<name>.out``). A complete
    run has actors that each spent their budget and exited 0, and a learner that stopped with 0
    when asked to.
    """
    reasons = []
    learner_error = _error_line(texts.get("learner", "")) or f"see {logs / 'learner.out'}"
    if learner_early is not None:
        reasons.append(
            f"the learner ended by itself ({_exit_text(learner_early)}): {learner_error.rstrip('.')}"
        )
    for name, early in actors_early.items():
        if early is None or stopped or learner_early is not None:
            continue
        label = "the actor" if name == "actor" else f"actor {name}"
        cause = _error_line(texts.get(name, ""))
        if early != 0 or cause is not None:
            reasons.append(
                f"{label} died before its budget was spent ({_exit_text(early)})"
                + (f": {cause.rstrip('.')}" if cause else f"; see {logs / f'{name}.out'}")
            )
        elif BUDGET_SPENT not in texts.get(name, ""):
            reasons.append(
                f"{label} stopped before its budget was spent (exit code 0); see {logs / f'{name}.out'}"
            )
    if (
        learner_early is None
        and learner_rc not in (None, 0)
        and not _teardown_warnings(texts, None, learner_rc)
    ):
        reasons.append(f"the learner failed ({_exit_text(learner_rc)}): {learner_error.rstrip('.')}")
    return reasons


def _teardown_warnings(texts: dict[str, str], learner_early: int | None, learner_rc: int | None) -> list[str]:
    """A learner that wrote its final checkpoint and then failed while its process ended.

    Seen once in many runs before the roles ended through :func:`..faults.entry.exit_process`:
    ``terminate called without an active exception`` (SIGABRT) after the final checkpoint, in native
    teardown. Should another such failure come, the run is whole (budget spent, checkpoint verified
    when written), so it is evaluated and reported, with this warning.
    """
    if (
        learner_early is not None
        or learner_rc in (None, 0)
        or FINAL_CHECKPOINT not in texts.get("learner", "")
    ):
        return []
    return [f"the learner exited with {_exit_text(learner_rc)} after writing its final checkpoint"]


def print_summary(summary: dict[str, Any]) -> None:
    """Print the end-of-run summary."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    window = summary["window"]
    print("[e2hil-sim] ---------------- summary ----------------")
    if summary["interrupted"]:
        print(f"  PARTIAL RUN                    {summary['reason']}")
    for warning in summary.get("warnings") or []:
        print(f"  WARNING                        {warning}")
    print(
        f"  env steps trained              {summary['env_steps']} of the {summary['env_step_budget']} budget "
        f"({summary['episodes']} finished episodes; an unfinished last episode is not counted)"
    )
    ratio = summary.get("updates_per_env_step")
    per_step = "" if ratio is None else f" ({ratio:.2f} per env step)"
    print(f"  learner updates                {summary['opt_steps']}{per_step}")
    print(f"  success, last {window} episodes       {pct(summary['success_last'])}")
    print(
        f"  teacher-free success           {pct(summary['teacher_free_success'])}"
        f" ({summary['eval_episodes']} episodes)"
    )
    print(
        f"  intervention rate, share of env steps: all {pct(summary['intervention_rate_all'])}, "
        f"last {window} episodes {pct(summary['intervention_rate_last'])}"
    )
    print(
        f"  wall time                      {summary['train_wall_s']:.0f} s training, {summary['total_wall_s']:.0f} s total"
    )
    by_actor = summary.get("by_actor") or {}
    if len(by_actor) > 1:
        for actor_id, values in by_actor.items():
            print(
                f"  actor {actor_id:<24} {values['env_steps']} env steps, {values['episodes']} episodes; "
                f"last {values['window']}: success {pct(values['success_last'])}, "
                f"intervention rate {pct(values['intervention_rate_last'])}"
            )
    print(f"  checkpoint                     {summary['checkpoint']}")
    if summary.get("teacher_dependence"):
        text = teacher_dependence_text(summary["teacher_dependence"], summary.get("intervention_rate_last"))
        print(f"  WARNING: {text}")
    if summary.get("collapse"):
        print(f"  {collapse_text(summary['collapse'])} (rolling {window} episodes; see plots/)")


HELP = """\
e2hil-sim: train a policy with human-in-the-loop RL in the headless gym_hil simulation, one command.

It starts LeRobot's learner and actor (the E2HiL plugin loaded) on 127.0.0.1, with a scripted
teacher standing in for the human; prints a progress line every env.launch.progress_interval_s
seconds; stops when the actor has spent policy.online_steps env steps; evaluates the final
policy teacher-free (env.launch.eval_episodes) and writes summary.json and plots/ in
--output_dir. Ctrl-C, SIGTERM or SIGHUP stop both processes (the learner saves a checkpoint).

  e2hil-sim --config_path HIL-SERL/train_gym_hil_env_SIM.json [--<field>=<value> ...]
  e2hil-sim --config_path ... --output_dir=<run> --resume=true   # continue an interrupted run

Exit code 0: a complete run; 1: a partial run (summary.json says why) or a failed start;
2: a bad command line or setup (one line: error: <cause>. <fix>).
Most used: --policy.online_steps (env-step budget), --output_dir, --algorithm.type=sac|e2hil,
--env.launch.eval_episodes, --env.launch.num_actors (sim actors sharing the budget on the one
learner), --wandb.enable=true, --faults.<field> (docs/faults.md). Docs: docs/sim.md.
`e2hil-sim --config_path ... --help-all` lists every field of the config (LeRobot's
TrainRLServerPipelineConfig, with the file's values).
"""


def main() -> None:
    """Console entry: ``e2hil-sim --config_path ... [dotted overrides]``.

    Exits 0 after a complete run, 1 after a partial run or a failed start, 2 on a bad command line,
    always with one ``error: <cause>. <fix>`` line on stderr when it is not 0.
    """
    from lerobot.configs import parser

    # A background job of a script starts with SIGINT ignored; Python then never raises
    # KeyboardInterrupt, and a SIGINT before training (parsing, the render check) was lost.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(HELP, flush=True)
        sys.exit(0)
    if "--help-all" in args:
        print(HELP, flush=True)
        args = [("--help" if arg == "--help-all" else arg) for arg in args]
    config_path = parser.parse_arg("config_path", args)
    try:
        summary = run(args)
    except KeyboardInterrupt:
        print(
            "error: the launcher was stopped by SIGINT while no learner or actor was running. "
            "Run the command again to train.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_FATAL)
    except LaunchError as err:
        print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
        sys.exit(err.code)
    except Exception as err:
        exit_on_setup_error(err, config_path)
    if summary["interrupted"]:
        print(f"error: partial run: {summary['reason']}. {summary['advice']}.", file=sys.stderr, flush=True)
        sys.exit(EXIT_FATAL)
    if summary["checkpoint"] is None:
        print(
            "error: the run ended without a checkpoint. Check --save_checkpoint and the learner's log.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_FATAL)


if __name__ == "__main__":
    main()
