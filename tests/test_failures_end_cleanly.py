"""A failed actor or learner ends at once, with one ``error:`` line and a non-zero exit.

The actor's case runs as a user meets it: a learner that makes no update (so it never sends new
weights) and an actor whose policy loop raises at its fifth env step, as LeRobot's EE-jump safety
stop does. Before the fix the actor never exited: one thread waited for the learner's next weights
and a queue's feeder thread was blocked writing to a pipe nobody read. A second actor on the same
learner is stopped with Ctrl-C (SIGINT) once connected; before the fix it too waited for weights
that never came, and only the launcher's stop timeout ended it.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from lerobot_policy_e2hil.launcher.children import KILL, Children
from test_faults_helpers import ROOT, SIM_JSON, free_port, wait_for

pytest.importorskip("gym_hil")

ENV = {
    **os.environ,
    "MUJOCO_GL": "egl",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TORCHDYNAMO_DISABLE": "1",
}

#: The sim actor (``python -m lerobot_policy_e2hil.launcher.actor``) whose env step raises at its fifth step.
FAILING_ACTOR = """
import functools

from lerobot.rl import actor

from lerobot_policy_e2hil import faults
from lerobot_policy_e2hil.launcher import actor as sim_actor

step = actor.step_env_and_process_transition
calls = [0]


@functools.wraps(step)
def failing_step(*args, **kwargs):
    calls[0] += 1
    if calls[0] >= 5:
        raise ValueError("EE jump 0.215m > 0.05m")
    return step(*args, **kwargs)


actor.step_env_and_process_transition = failing_step
faults.run_entry(sim_actor.main)
"""

#: Seconds the actor may take from its failure to its exit.
EXIT_BOUND_S = 60


@pytest.mark.e2e
@pytest.mark.slow
def test_actor_whose_policy_loop_raises_or_that_is_stopped_exits_within_a_bound(tmp_path):
    port = free_port()
    flags = [
        "--config_path", str(SIM_JSON),
        f"--policy.actor_learner_config.learner_port={port}",
        "--policy.online_step_before_learning=20000",  # the learner makes no update, sends no new weights
        "--batch_size=32",
        "--env.teacher.demo_episodes=0",
    ]  # fmt: skip
    children = Children(env=ENV, cwd=ROOT)
    children.start(
        "learner",
        [
            sys.executable,
            "-m",
            "lerobot_policy_e2hil.launcher.learner",
            *flags,
            f"--output_dir={tmp_path / 'learner'}",
        ],
        tmp_path / "learner.log",
    )
    script = tmp_path / "failing_actor.py"
    script.write_text(FAILING_ACTOR)
    actor = children.start(
        "actor",
        [sys.executable, str(script), *flags, f"--output_dir={tmp_path / 'actor'}"],
        tmp_path / "actor.out",
        stderr_log=tmp_path / "actor.err",
    )
    try:
        returncode = actor.wait(timeout=600)
        stderr = (tmp_path / "actor.err").read_text(errors="replace")
        failed_at = next((line for line in stderr.splitlines() if "The policy loop failed" in line), None)
        assert failed_at is not None, stderr[-3000:]
        assert returncode == 1, stderr[-3000:]
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        assert last.startswith(
            "error: the actor stopped: LeRobot's safety stop: the commanded end effector jumped 0.215 m"
        )
        joined = [line for line in stderr.splitlines() if "Receive policy process joined" in line]
        assert joined, stderr[-3000:]
        clock = [time.strptime(line.split()[2], "%H:%M:%S") for line in (failed_at, joined[0])]
        assert time.mktime(clock[1]) - time.mktime(clock[0]) <= EXIT_BOUND_S

        stopped = children.start(
            "stopped actor",
            [
                sys.executable,
                "-m",
                "lerobot_policy_e2hil.launcher.actor",
                *flags,
                f"--output_dir={tmp_path / 'stopped_actor'}",
            ],
            tmp_path / "stopped_actor.log",
        )
        log = tmp_path / "stopped_actor.log"
        wait_for(
            lambda: stopped.poll() is not None or "[ACTOR] parameters Starting receiver" in log.read_text(),
            300,
            "the second actor to open its parameter stream",
        )
        assert stopped.poll() is None, log.read_text()[-3000:]
        time.sleep(2)  # into its policy loop
        stopped.popen.send_signal(signal.SIGINT)
        returncode = stopped.wait(timeout=EXIT_BOUND_S)
        assert returncode == 0 and "Receive policy process joined" in log.read_text(), log.read_text()[-3000:]
        assert "gRPC error" not in log.read_text()  # the cancelled parameter stream ends quietly
    finally:
        children.stop_all(KILL)


def test_learner_that_ends_with_no_checkpoint_exits_non_zero(monkeypatch, capsys):
    """``e2hil-learner`` stopped before its first update: one ``error:`` line, exit 1 (it exited 0)."""
    from types import SimpleNamespace

    from lerobot_policy_e2hil import cli
    from lerobot_policy_e2hil.faults import entry

    monkeypatch.setattr(entry, "_FATAL", [])
    monkeypatch.setattr(cli, "save_final_checkpoint", lambda cfg: None)
    cfg = SimpleNamespace(save_checkpoint=True, policy=SimpleNamespace(online_step_before_learning=100))
    monkeypatch.setattr(sys, "argv", ["e2hil-learner"])
    with pytest.raises(SystemExit) as exit_info:
        entry.run_entry(lambda: cli.finish_learner(cfg))
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: the learner stopped before its first update, so it wrote no checkpoint (it starts updating "
        "once the actor has sent policy.online_step_before_learning=100 transitions). Keep the actor running "
        "until the learner logs updates, or lower --policy.online_step_before_learning"
    ]


@pytest.mark.parametrize("program", ["learner", "actor"])
def test_existing_output_folder_is_one_error_line(tmp_path, program, monkeypatch, capsys):
    """LeRobot's ``FileExistsError`` traceback becomes one line with the fix, exit 2 (in-process)."""
    from lerobot_policy_e2hil import cli
    from test_faults_setup import run_entry_in_process

    left = tmp_path / "train"
    left.mkdir()
    monkeypatch.chdir(ROOT)
    code, last = run_entry_in_process(
        monkeypatch, capsys, getattr(cli, f"{program}_main"),
        "--config_path", str(ROOT / "HIL-SERL" / "train_config_e2hil_so101.json"),
        f"--output_dir={left}",
        f"--dataset.root={tmp_path / 'demos'}",
        "--policy.vision_encoder_name=null",
        "--policy.device=cpu",
        "--env.robot.type=so101_follower_sim",
        "--env.teleop.type=so101_leader_hil_sim",
        "--env.teleop.use_keyboard=false",
    )  # fmt: skip
    assert code == 2
    assert last.startswith(
        f"error: output_dir='{left}' already exists (an earlier run left it) and resume=false."
    )
    assert "Give a new --output_dir" in last


def test_ee_jump_stop_is_one_line_with_the_fix(monkeypatch, capsys):
    """LeRobot's EE-jump ValueError ends the actor and the evaluation with one line naming the bounds to narrow."""
    import threading

    from lerobot_policy_e2hil.actor.hooks import _fatal_on_error
    from lerobot_policy_e2hil.errors import exit_on_setup_error
    from lerobot_policy_e2hil.faults import entry

    monkeypatch.setattr(entry, "_FATAL", [])

    def policy_loop(cfg, shutdown_event, **queues):
        raise ValueError("EE jump 0.215m > 0.05m")

    _fatal_on_error(policy_loop)(None, threading.Event())
    message = entry.fatal_message()
    assert message.startswith(
        "the actor stopped: LeRobot's safety stop: the commanded end effector jumped 0.215 m in one step (limit 0.05 m)"
    )
    assert (
        "end_effector_step_sizes" in message
        and "env.processor.inverse_kinematics.end_effector_bounds" in message
    )
    with pytest.raises(SystemExit) as exit_info:  # the evaluation's entry point
        exit_on_setup_error(ValueError("EE jump 0.210m > 0.05m"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "error: LeRobot's safety stop: the commanded end effector jumped 0.210 m"
    )
