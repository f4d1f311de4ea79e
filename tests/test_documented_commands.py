"""Every command in README.md and README_HIL_SERL.md, exactly as written, parses and starts.

One test walks the docs' ```bash blocks and runs each command in a fresh process, as a user
types it, with only what a machine without the robot needs swapped in by flags (the documented
dry-run flags of README_HIL_SERL.md): the simulated follower and leader instead of the real
ones, local or no encoder weights instead of the hub's, ports, datasets and outputs in a
temporary folder. A command passes when it exits 0, or is still running after
:data:`START_S` seconds (waiting for a device, a key or the learner: it started), and printed no
Python traceback (it moves on early when the command prints one of the :data:`WAITING` lines; a
command written twice runs once). Recording and the reward classifier, whose outputs later commands read, must
finish (:data:`FINISH_S`). ``make sim`` / ``make test`` / ``e2hil-so101-dry-run`` (minutes long, exercised
by their own tests and CI), ``pip install -e .`` (the set-up itself) and the by-hand sequence of
README_HIL_SERL.md's "Try it without a robot" (run as typed, to its checkpoint and evaluation, by
tests/test_so101_by_hand.py) are the only commands not run here; LeRobot's ROI picker, which opens a
window, passes headless once it fails at that window and nowhere before.

Commands run in dependency order (demos are recorded before they are cropped, replayed or
trained on; the reward classifier before the evaluation that loads it), the rest in doc order.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "README_HIL_SERL.md")
#: Seconds after which a command that is still running counts as started.
START_S = 45
#: Lines that show a command got past parsing and set-up and now waits (for a key, a device or the
#: learner): the walk moves on when one appears, without waiting out START_S.
WAITING = (
    "press Enter when done",  # lerobot-find-port
    "Press ENTER to use provided calibration file",  # lerobot-calibrate
    "Teleop loop time",  # lerobot-teleoperate, in its control loop
    "Starting learner thread",  # e2hil-learner, serving
    "Establishing connection with Learner",  # e2hil-actor, env and policy built
)
#: Seconds allowed to the commands whose output later ones read (recording, the reward classifier).
FINISH_S = 300
#: Documented commands not run here, with the reason.
NOT_RUN = {
    "make sim": "the default sim training run (minutes); tests/test_sim_e2e.py runs the launcher",
    "make test": "the test suite itself",
    "e2hil-so101-dry-run --output_dir=outputs/so101_dry_run": (
        "the whole workflow (minutes); tests/test_so101_dry_run.py runs it end to end"
    ),
    "pip install -e .": "the set-up (make install / .ci/run run it)",
}
#: The section whose commands tests/test_so101_by_hand.py runs as typed, to their products.
BY_HAND = ("README_HIL_SERL.md", "## Try it without a robot")
TRACEBACK = "Traceback (most recent call last)"
#: Commands that open a window: headless, they pass once they reach it (OpenCV's "no GUI" error).
NEEDS_DISPLAY = {"lerobot.rl.crop_dataset_roi": "cv2.error: OpenCV"}
#: The simulated SO101 follower and leader (README_HIL_SERL.md, "Try it without a robot").
SIM_TYPES = {
    "so101_follower": "so101_follower_sim",
    "so101_leader": "so101_leader_hil_sim",
    "so101_leader_hil": "so101_leader_hil_sim",
}


@dataclass
class DocCommand:
    """One command of a ```bash block: where it is written and its text (continuations joined)."""

    doc: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def documented_commands(docs=DOCS) -> list[DocCommand]:
    """The commands of every ```bash block of ``docs``, comments stripped, in doc order."""
    commands = []
    for doc in docs:
        lines = (REPO / doc).read_text().splitlines()
        in_block, pending, start = False, "", 0
        for number, raw in enumerate(lines, start=1):
            stripped = raw.strip()
            if stripped.startswith("```"):
                in_block = stripped == "```bash" and not in_block
                continue
            if not in_block:
                continue
            text = re.sub(r"\s+#\s.*$", "", stripped) if not stripped.startswith("#") else ""
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1].rstrip() + " "
                continue
            full = (pending + text).strip()
            pending = ""
            if full:
                commands.append(DocCommand(doc, start, full))
    return commands


def by_hand_lines() -> range:
    """Line numbers of the :data:`BY_HAND` section."""
    doc, heading = BY_HAND
    lines = (REPO / doc).read_text().splitlines()
    start = lines.index(heading) + 1
    end = next(n for n in range(start, len(lines)) if lines[n].startswith("## "))
    return range(start + 1, end + 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DryRun:
    """What the walk shares between commands: the temp folder and what earlier commands produced."""

    root: Path
    encoder: Path
    checkpoint: Path
    demos: Path | None = None
    classifier: Path | None = None
    count: int = 0

    def new_dir(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:02d}_{name}"


def _program(name: str) -> str:
    bin_dir = Path(sys.executable).parent
    if name == "python":
        return sys.executable
    if name.startswith(".venv/bin/"):
        return str(bin_dir / name.removeprefix(".venv/bin/"))
    return str(bin_dir / name) if (bin_dir / name).exists() else name


def _has(argv: list[str], prefix: str) -> bool:
    return any(a.startswith(prefix) for a in argv)


def _so101_train_flags(run: DryRun, argv: list[str], output_name: str) -> list[str]:
    """Flags that run the SO101 train config offline on the simulated arms."""
    flags = [
        "--env.robot.type=so101_follower_sim",
        "--env.teleop.type=so101_leader_hil_sim",
        "--env.teleop.use_keyboard=false",
        "--policy.vision_encoder_name=null",
        f"--policy.actor_learner_config.learner_port={_free_port()}",
        f"--env.processor.reward_classifier.pretrained_path={run.classifier}",
    ]
    if not _has(argv, "--policy_path"):  # the learner and the actor; the evaluation takes env/policy only
        flags += [f"--dataset.root={run.demos}", f"--output_dir={run.new_dir(output_name)}"]
    return flags


def dry_run_argv(command: DocCommand, run: DryRun) -> list[str]:
    """The command's argv with the documented dry-run swaps applied (see the module docstring)."""
    argv = shlex.split(command.text)
    argv = [_program(argv[0]), *argv[1:]]
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.endswith((".type", "robot.type", "teleop.type")) and value in SIM_TYPES:
            arg = f"{key}={SIM_TYPES[value]}"
        if "outputs/train/<run>/checkpoints/last/pretrained_model" in arg:
            arg = arg.replace("outputs/train/<run>/checkpoints/last/pretrained_model", str(run.checkpoint))
        if run.demos is not None and "data/so101_pick_lift_demos" in arg:
            arg = arg.replace("data/so101_pick_lift_demos", str(run.demos))
        if eq and key == "--output" and value.startswith("outputs/"):
            arg = f"--output={run.new_dir('eval')}/summary.json"
        elif arg.startswith("outputs/") or value.startswith("outputs/"):
            arg = arg.replace("outputs/", f"{run.root}/outputs/", 1)
        out.append(arg)
    argv = out
    text = command.text
    if "so101.record" in text:
        if _has(argv, "--mode=replay"):
            argv += [f"--dataset.root={run.demos}"]
        else:
            argv += [f"--dataset.root={run.new_dir('demos')}"]
        argv += [
            "--env.robot.type=so101_follower_sim",
            "--env.teleop.type=so101_leader_hil_sim",
            "--env.teleop.use_keyboard=false",
            "--dataset.num_episodes_to_record=1",
            "--env.processor.reset.control_time_s=3",
            "--env.processor.reset.reset_time_s=0",
        ]
    elif "reward_classifier_train_config" in text:
        argv += [
            f"--dataset.root={run.demos}",
            f"--reward_model.model_name={run.encoder}",
            "--reward_model.device=cpu",
            f"--output_dir={run.new_dir('classifier')}",
            "--steps=2",
            "--save_freq=2",
            "--batch_size=2",
            "--num_workers=0",
        ]
    elif re.search(r"e2hil-(learner|actor)", text) and "so101" in text:
        argv += _so101_train_flags(run, argv, "learner" if "learner" in text else "actor")
    elif "so101.evaluate" in text:
        argv += [
            *_so101_train_flags(run, argv, "eval"),
            "--n_episodes=1",
            "--max_episode_steps=3",
            "--env.processor.reset.reset_time_s=0",
        ]
    return argv


def _order(command: DocCommand) -> int:
    """Dependency stage: record, then what reads the demos, then the classifier, then its users."""
    text = command.text
    if "so101.record" in text and "--mode=replay" not in text:
        return 0
    if "reward_classifier_train_config" in text:
        return 2
    if "so101.evaluate" in text or re.search(r"e2hil-(learner|actor)", text):
        return 3
    return 1


@dataclass
class Outcome:
    """How a command ended: exit code (None: still running when the walk moved on) and its output."""

    returncode: int | None
    output: str


def run_started(argv: list[str], env: dict[str, str], cwd: Path, log: Path, wait_s: float) -> Outcome:
    """Run ``argv`` until it exits, prints a :data:`WAITING` line, or ``wait_s`` seconds pass.

    Stdin stays open and silent.
    """
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + wait_s
        returncode = proc.poll()
        while returncode is None and time.monotonic() < deadline:
            if any(line in log.read_text(errors="replace") for line in WAITING):
                break
            time.sleep(0.5)
            returncode = proc.poll()
        output = log.read_text(errors="replace")  # before any signal: a stopped process may print more
        if returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Outcome(returncode, output)


def distinct(commands: list[DocCommand]) -> list[DocCommand]:
    """The first of each command written more than once (``.venv/bin/x`` and ``x`` are one program)."""
    seen, kept = set(), []
    for command in commands:
        words = shlex.split(command.text)
        key = (words[0].removeprefix(".venv/bin/"), *words[1:])
        if key not in seen:
            seen.add(key)
            kept.append(command)
    return kept


def test_documented_commands_are_found():
    """The walker sees the docs' commands (a parsing slip must not make the e2e test vacuous)."""
    commands = documented_commands()
    texts = [c.text for c in commands]
    assert "make sim" in texts
    assert any("e2hil-learner --config_path HIL-SERL/train_config_e2hil_so101.json" in t for t in texts)
    assert any(t.startswith("lerobot-teleoperate --robot.type=so101_follower") for t in texts), texts
    assert sum("so101.record" in t for t in texts) >= 3
    assert not any(t.endswith("\\") for t in texts)
    once = [c.text for c in distinct(commands)]
    assert len(once) < len(texts) and "make sim" in once
    plain_learner = [
        t for t in once if t.endswith("e2hil-learner --config_path HIL-SERL/train_config_e2hil_so101.json")
    ]
    assert plain_learner == [".venv/bin/e2hil-learner --config_path HIL-SERL/train_config_e2hil_so101.json"]
    by_hand = [c.text.split()[0] for c in commands if c.doc == BY_HAND[0] and c.line in by_hand_lines()]
    assert by_hand == [
        "e2hil-so101-dry-run",
        "python",
        "python",
        "lerobot-train",
        "OMP_NUM_THREADS=1",
        "OMP_NUM_THREADS=1",
        "python",
    ]


@pytest.mark.e2e
def test_every_documented_command_parses_and_starts(tmp_path, trained):
    """Each documented command, in a fresh process with the dry-run swaps, starts without a traceback."""
    env = dict(os.environ)
    env.update(
        MUJOCO_GL="egl",
        HF_HUB_OFFLINE="1",
        WANDB_MODE="disabled",
        HF_LEROBOT_HOME=str(tmp_path / "lerobot_home"),
        HF_LEROBOT_CALIBRATION=str(tmp_path / "calibration"),
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    encoder = tmp_path / "resnet10"
    subprocess.run(
        [sys.executable, "-m", "lerobot_policy_e2hil.so101.local_encoder", str(encoder)],
        check=True,
        env=env,
        capture_output=True,
    )
    run = DryRun(root=tmp_path, encoder=encoder, checkpoint=trained["pretrained_model"])
    by_hand = by_hand_lines()
    commands = distinct(
        [
            c
            for c in documented_commands()
            if c.text not in NOT_RUN and not (c.doc == BY_HAND[0] and c.line in by_hand)
        ]
    )
    assert len(commands) >= 10
    failures = []
    for number, command in enumerate(sorted(commands, key=_order)):
        argv = dry_run_argv(command, run)
        wait_s = FINISH_S if _order(command) in (0, 2) else START_S
        outcome = run_started(argv, env, REPO, logs / f"{number:02d}.log", wait_s)
        tail = "\n".join(outcome.output.splitlines()[-15:])
        if _reached_display(command, outcome):
            pass
        elif TRACEBACK in outcome.output:
            failures.append(f"{command.where} `{command.text}`: traceback\n{tail}")
        elif outcome.returncode not in (None, 0):
            failures.append(f"{command.where} `{command.text}`: exit {outcome.returncode}\n{tail}")
        elif outcome.returncode is None and wait_s == FINISH_S:
            failures.append(f"{command.where} `{command.text}`: not finished after {FINISH_S} s\n{tail}")
        recorded = _dataset_root(argv) if "so101.record" in command.text else None
        if run.demos is None and recorded is not None and (recorded / "meta" / "info.json").is_file():
            run.demos = recorded
        if "reward_classifier_train_config" in command.text:
            run.classifier = _classifier_checkpoint(argv)
    assert not failures, "\n\n".join(failures)


def _reached_display(command: DocCommand, outcome: Outcome) -> bool:
    """Whether a window-opening command got as far as its window, and failed only there."""
    for name, gui_error in NEEDS_DISPLAY.items():
        if name in command.text and outcome.output.count(TRACEBACK) == 1:
            error_lines = [line for line in outcome.output.splitlines() if "Error" in line or "error" in line]
            return (
                bool(error_lines)
                and error_lines[-1].startswith(gui_error)
                and "not implemented" in (error_lines[-1])
            )
    return False


def _dataset_root(argv: list[str]) -> Path:
    return Path([a for a in argv if a.startswith("--dataset.root=")][-1].partition("=")[2])


def _classifier_checkpoint(argv: list[str]) -> Path:
    output = Path([a for a in argv if a.startswith("--output_dir=")][-1].partition("=")[2])
    return output / "checkpoints" / "last" / "pretrained_model"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "program",
    [
        "lerobot-train",
        "lerobot-eval",
        "e2hil-so101-record",
        "e2hil-so101-dry-run",
    ],
)
def test_cli_help_starts_without_traceback(program):
    """``<cli> --help`` exits 0 with no traceback: FFmpeg for torchcodec is installed, every type parses.

    ``e2hil-sim``, ``e2hil-learner`` and ``e2hil-actor``: test_cli_errors' help test.
    """
    result = subprocess.run(
        [_program(program), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"},
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert TRACEBACK not in output, output[:3000]
    assert "cannot be loaded" not in output, output[:3000]  # torchcodec without FFmpeg's libraries
    assert result.returncode == 0, output[-3000:]
