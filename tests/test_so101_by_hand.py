"""README_HIL_SERL.md's by-hand SO101 sequence on simulated arms, each command as typed.

The commands are read from the guide's "Try it without a robot" section (its bash blocks after the
one-command dry run) and run in a fresh working folder, in a shell environment as after
``source .venv/bin/activate``: record, encoder and classifier; the learner and the actor together
until the learner logs updates, then Ctrl-C (SIGINT) to each; the evaluation on the checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lerobot_policy_e2hil.so101.dry_run import checkpoint_produced, demos_produced

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "README_HIL_SERL.md"
BIN = Path(sys.executable).parent
#: The learner's line per update (LeRobot's learner logs it after every optimisation step).
UPDATE_LINE = "Optimization frequency loop"
#: Bounds of the waits (loaded 2-core machine).
STEP_TIMEOUT_S = 900
TRAIN_TIMEOUT_S = 1200
STOP_TIMEOUT_S = 180


def guide_blocks() -> list[list[tuple[dict[str, str], list[str]]]]:
    """The bash blocks of the guide's "Try it without a robot" section: per block, (env, argv) per command."""
    text = GUIDE.read_text()
    section = text.split("## Try it without a robot", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        commands = []
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            env = {}
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                key, value = words.pop(0).split("=", 1)
                env[key] = value
            if words:
                commands.append((env, words))
        blocks.append(commands)
    return blocks


def _argv(words: list[str]) -> list[str]:
    """A command as the activated venv runs it: its programs come from the venv's bin folder."""
    program = BIN / ("python" if words[0] == "python" else words[0])
    assert program.exists(), f"{words[0]} is not in {BIN} (make install should put it there)"
    return [str(program), *words[1:]]


def _shell_env(work: Path) -> dict[str, str]:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    # Offline (no hub download in tests) and the simulated arms' calibration inside the work folder
    return {
        **os.environ,
        "PATH": path,
        "VIRTUAL_ENV": str(BIN.parent),
        "HF_HUB_OFFLINE": "1",
        "HF_LEROBOT_CALIBRATION": str(work / "calibration"),
    }


def _run(work: Path, env: dict[str, str], command: tuple[dict[str, str], list[str]], log: Path) -> None:
    extra, words = command
    with log.open("w") as out:
        result = subprocess.run(
            _argv(words),
            cwd=work,
            env={**env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=STEP_TIMEOUT_S,
        )
    assert result.returncode == 0, (
        f"{shlex.join(words[:3])} exited {result.returncode}:\n{log.read_text()[-3000:]}"
    )


def _ctrl_c(proc: subprocess.Popen, timeout_s: float) -> int:
    """Ctrl-C in the process's terminal: SIGINT to its process group; its exit code."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{proc.args[0]} did not end within {timeout_s} s of Ctrl-C")


def test_the_guide_has_the_by_hand_blocks():
    blocks = guide_blocks()
    assert [len(block) for block in blocks] == [1, 3, 2, 1]
    record = blocks[1][0][1]
    assert "--env.robot.physics=mujoco" in record and "--env.teleop.script=pick_cube" in record
    assert [words[0] for _, words in blocks[2]] == ["e2hil-learner", "e2hil-actor"]


@pytest.mark.e2e
@pytest.mark.slow
def test_by_hand_sequence_records_moving_demos_trains_a_checkpoint_and_evaluates(tmp_path):
    blocks = guide_blocks()
    work = tmp_path / "work"
    work.mkdir()
    (work / "HIL-SERL").symlink_to(REPO / "HIL-SERL")
    logs = tmp_path / "logs"
    logs.mkdir()
    env = _shell_env(work)

    for i, command in enumerate(blocks[1]):
        _run(work, env, command, logs / f"prepare{i}.log")
    demos = demos_produced(work / "outputs/dry_run/demos")
    assert demos["episodes"] == 2 and demos["frames"] > 0
    assert demos["moving_frames"] > demos["frames"] // 2, demos  # the teacher moved the leader
    assert demos["state_span"] > 5.0, demos  # the follower's joints moved (degrees)
    front, wrist = (demos["image_mean_rgb"][camera] for camera in demos["cameras"])
    assert front != wrist, demos  # two rendered views, not the synthetic square

    procs = {}
    try:
        for (extra, words), name in zip(blocks[2], ("learner", "actor"), strict=True):
            procs[name] = subprocess.Popen(
                _argv(words),
                cwd=work,
                env={**env, **extra},
                stdout=(logs / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if name == "learner":
                time.sleep(5.0)  # learner first, as in the guide
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while (logs / "learner.log").read_text(errors="replace").count(UPDATE_LINE) < 3:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    log = (logs / f"{name}.log").read_text(errors="replace")
                    pytest.fail(
                        f"{name} exited {proc.returncode} before the learner's updates:\n{log[-3000:]}"
                    )
            assert time.monotonic() < deadline, "no learner update within the bound"
            time.sleep(2.0)
        actor_code = _ctrl_c(procs["actor"], STOP_TIMEOUT_S)
        learner_code = _ctrl_c(procs["learner"], STOP_TIMEOUT_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    learner_log = (logs / "learner.log").read_text(errors="replace")
    # exit 0 also after a native library aborts at exit (tests/test_process_exit.py)
    assert learner_code == 0, learner_log[-3000:]
    assert actor_code in (0, 130), (logs / "actor.log").read_text(errors="replace")[-3000:]
    assert "EE jump" not in (logs / "actor.log").read_text(errors="replace")

    model = work / "outputs/dry_run/train/checkpoints/last/pretrained_model"
    assert (model / "model.safetensors").is_file(), learner_log[-3000:]
    trained = checkpoint_produced(model)
    assert trained["algorithm"] == "e2hil" and trained["step"] > 0, trained
    assert trained["online_buffer"] > 0 and trained["offline_buffer"] == demos["frames"], trained

    _run(work, env, blocks[3][0], logs / "eval.log")
    summary = json.loads((work / "outputs/dry_run/eval.json").read_text())
    assert summary["n_episodes"] == 2 and len(summary["episodes"]) == 2
    assert (work / summary["policy_path"]).resolve() == model.resolve()
