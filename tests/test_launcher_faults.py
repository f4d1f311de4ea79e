"""Issue 12: no silent hang, no orphan, no false success, under the launcher and the entry points.

Each test is one numbered item of the issue, run as the user types it (``e2hil-sim``, the sim
learner) with a short budget: budgets refused at parse time (1), stop signals that end the
children (2), a damaged newest checkpoint skipped (3), a dead actor or a failing learner reported
as a partial run (4, 9), a failed start that does not block its rerun (5), one ``error:`` line
(6), the summary's definitions (7, in ``test_launcher_report.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_faults_helpers import ROOT, SIM_JSON, free_port, records, wait_for

pytest.importorskip("gym_hil")

ENV = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
# A short, cheap launcher run; tests add the budget
LAUNCH_FLAGS = [
    "--config_path", str(SIM_JSON),
    "--policy.online_step_before_learning=100",
    "--batch_size=32",
    "--log_freq=5",
    "--save_freq=25",
    "--env.teacher.demo_episodes=2",
    "--env.actor_max_hz=40",
    "--env.launch.eval_episodes=0",
    "--env.launch.progress_interval_s=2",
    "--env.launch.stop_timeout_s=60",
]  # fmt: skip


def sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``e2hil-sim <args>`` to completion."""
    command = [sys.executable, "-m", "lerobot_policy_e2hil.launcher.train", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=ENV)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_one_error_line(result: subprocess.CompletedProcess, code: int, start: str) -> str:
    """Exit ``code``; the last stderr line is ``error: <start>...``; no traceback of ours or LeRobot's."""
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-3000:]
    line = last_line(result.stderr)
    assert line.startswith(f"error: {start}"), result.stderr[-3000:]
    frames = [f for f in result.stderr.splitlines() if f.strip().startswith('File "')]
    assert not [f for f in frames if "lerobot_policy_e2hil" in f or "draccus" in f or "/lerobot/" in f]
    return line


class Launcher:
    """``e2hil-sim`` in the background, its output in files, signalled by pid."""

    def __init__(self, tmp_path: Path, *args: str):
        self.out = tmp_path / "run"
        self.logs = tmp_path / ".run.launch"
        self.stdout, self.stderr = tmp_path / "launcher.out", tmp_path / "launcher.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lerobot_policy_e2hil.launcher.train",
                    *LAUNCH_FLAGS,
                    *args,
                    f"--output_dir={self.out}",
                ],
                stdout=out,
                stderr=err,
                cwd=ROOT,
                env=ENV,
                start_new_session=True,
            )
        self.children: list[int] = []

    def wait_until_training(self, timeout: float = 240) -> None:
        """Until the actor is connected (its log says so), noting the learner's and actor's pids."""

        def connected() -> bool:
            actor = self.logs / "actor.out"
            return actor.exists() and "Connection with Learner established" in actor.read_text(
                errors="replace"
            )

        wait_for(lambda: self.popen.poll() is not None or connected(), timeout, "the actor to connect")
        assert self.popen.poll() is None, self.text()
        self.children = process_tree(self.popen.pid)[1:]
        assert len(self.children) >= 2, self.children

    def pid_of(self, role: str) -> int:
        for pid in self.children:
            if f"lerobot_policy_e2hil.launcher.{role}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace"
            ):
                return pid
        raise AssertionError(f"no {role} among {self.children}")

    def finish(self, timeout: float = 300) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        finally:
            for pid in [self.popen.pid, *self.children]:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def text(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc``."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*/children"):
            tree.extend(int(child) for child in task.read_text().split())
        index += 1
    return tree


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


# 1. Budgets and sizes are refused at parse time, in one place, by every entry point.


@pytest.mark.e2e
def test_budgets_that_would_hang_are_refused_by_every_entry_point(tmp_path, monkeypatch, capsys):
    result = sim(*LAUNCH_FLAGS, "--policy.online_steps=80", f"--output_dir={tmp_path / 'run'}")
    line = assert_one_error_line(result, 2, "policy.online_steps=80 is invalid")
    assert "> policy.online_step_before_learning (=100)" in line
    assert not (tmp_path / "run").exists()

    from lerobot_policy_e2hil import cli
    from test_faults_setup import run_entry_in_process

    for main, flag, message in (
        (cli.learner_main, "--batch_size=-1", "error: batch_size=-1 is invalid; allowed values: >= 1."),
        (
            cli.actor_main,
            "--policy.online_steps=0",
            "error: policy.online_steps=0 is invalid; allowed values: >= 1.",
        ),
    ):
        code, last = run_entry_in_process(
            monkeypatch, capsys, main, "--config_path", str(SIM_JSON), flag, f"--output_dir={tmp_path / 'x'}"
        )
        assert (code, last.split(" Set ")[0]) == (2, message)


def test_the_actor_alone_may_run_fewer_steps_than_the_learner_waits_for():
    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.launcher.train import load_config
    from lerobot_policy_e2hil.setup_checks import check_budgets

    cfg = load_config(
        ["--config_path", str(SIM_JSON), "--policy.online_steps=50"]
    )  # a resumed actor's budget
    check_budgets(cfg, "actor")
    with pytest.raises(ConfigError, match=r"policy.online_steps=50 is invalid; allowed values: > policy"):
        check_budgets(cfg, "learner")


# 2. A stop signal to the launcher ends the learner and every actor: SIGTERM in
#    test_sim_several_actors_e2e.py (two actors), SIGKILL in test_launcher_orphans.py.


# 3. A damaged newest checkpoint is skipped: resume falls back to the newest one that verifies.


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    from lerobot_policy_e2hil.checkpoints import damage, prepare_resume
    from lerobot_policy_e2hil.launcher.train import _resume_budget
    from test_faults_checkpoints import add_transitions, atomic_save, make_run, save

    out = tmp_path / "run"
    run = make_run(out)
    add_transitions(run[1].policy, run[2], 30, intervention=False)
    add_transitions(run[1].policy, run[3], 10, intervention=True)
    save(atomic_save(), run, 10)
    save(atomic_save(), run, 20)
    checkpoints = out / "checkpoints"
    newest = sorted(p for p in checkpoints.iterdir() if p.name.isdigit())[-1]
    model = newest / "pretrained_model" / "model.safetensors"
    size = model.stat().st_size
    with open(model, "r+b") as f:
        f.truncate(size // 2)
    assert damage(newest) == f"pretrained_model/model.safetensors has {size // 2} bytes, {size} expected"

    with caplog.at_level("WARNING"):
        chosen = prepare_resume(out)
    assert chosen.name.endswith("10") and (checkpoints / "last").resolve() == chosen.resolve()
    assert f"Skipping checkpoint {newest}: pretrained_model/model.safetensors has" in caplog.text
    run[0].policy.online_steps = 1000
    assert _resume_budget(run[0], out) == 1000  # the launcher picks the same one (its marker has no steps)


# 4. A dead actor is a partial run: non-zero exit, interrupted, the reason, no evaluation.


@pytest.mark.e2e
@pytest.mark.slow
def test_dead_actor_makes_a_partial_run(tmp_path):
    launcher = Launcher(tmp_path, "--policy.online_steps=100000", "--env.launch.eval_episodes=2")
    try:
        launcher.wait_until_training()
        wait_for(lambda: records(launcher.out, "checkpoint"), 300, "a first checkpoint", ())
        os.kill(launcher.pid_of("actor"), signal.SIGKILL)
        code = launcher.finish()
    finally:
        launcher.finish()
    assert code == 1, launcher.text()
    summary = json.loads((launcher.out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert "the actor died before its budget was spent (killed by SIGKILL)" in summary["reason"]
    assert summary["teacher_free_success"] is None and summary["actor_exit_code"] == -signal.SIGKILL
    line = last_line(launcher.stderr.read_text())
    assert line.startswith("error: partial run: the actor died") and "--resume=true" in line


# 5. A failed start (port clash) leaves nothing behind and never advises --resume=true.


@pytest.mark.e2e
def test_port_clash_fails_at_once_and_leaves_nothing_behind(tmp_path):
    from test_faults_setup import grpc_server_on

    port = free_port()
    server = grpc_server_on(port)  # another program on the port
    try:
        result = sim(
            *LAUNCH_FLAGS,
            "--policy.online_steps=500",
            f"--policy.actor_learner_config.learner_port={port}",
            f"--output_dir={tmp_path / 'run'}",
        )
    finally:
        server.stop(None)
    assert_one_error_line(
        result, 2, f"the learner cannot listen on 127.0.0.1:{port} (Address already in use)"
    )
    assert "--resume=true" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()  # the same command can run again


@pytest.mark.slow
def test_readiness_check_tells_our_learner_from_another_program():
    from lerobot_policy_e2hil.setup_checks import listens_on
    from test_faults_setup import grpc_server_on

    port = free_port()
    server = grpc_server_on(port)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert listens_on(os.getpid(), port) is True
        assert listens_on(other.pid, port) is False  # the port is open, but not this process's
    finally:
        other.kill()
        other.wait()
        server.stop(None)


# 9 (+5, 6). A learner that cannot load its vision encoder exits non-zero; the launcher says why.

NO_ENCODER = ["--env.image_obs=true", "--policy.vision_encoder_name=e2hil-test/no-such-encoder"]


@pytest.mark.e2e
def test_learner_that_cannot_load_its_encoder_exits_non_zero(tmp_path):
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.launcher.learner", *LAUNCH_FLAGS, *NO_ENCODER,
        f"--policy.actor_learner_config.learner_port={free_port()}", f"--output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT, env=ENV)
    assert result.returncode == 1, result.stderr[-3000:]
    assert last_line(result.stderr).startswith("error: the learner's training loop failed: OSError:")


@pytest.mark.e2e
@pytest.mark.slow
def test_launcher_reports_the_learners_error_and_the_same_command_can_run_again(tmp_path):
    args = [*LAUNCH_FLAGS, *NO_ENCODER, "--policy.online_steps=500", f"--output_dir={tmp_path / 'run'}"]
    result = sim(*args, timeout=300)
    line = assert_one_error_line(result, 1, "")  # a failed start, or a partial run if the actor had started
    assert "the learner ended by itself (exit code 1): the learner's training loop failed: OSError" in line
    assert "--resume=true" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists() and "the same command can run again" in line


def test_actor_crash_in_its_policy_loop_is_fatal(monkeypatch):
    import threading

    from lerobot_policy_e2hil.actor.hooks import _fatal_on_error
    from lerobot_policy_e2hil.faults import entry

    monkeypatch.setattr(entry, "_FATAL", [])

    def first_step(cfg, shutdown_event, *args):
        raise RuntimeError("the env broke at its first step")

    shutdown = threading.Event()
    _fatal_on_error(first_step)(None, shutdown)
    assert shutdown.is_set()
    assert entry.fatal_message().startswith(
        "the actor's policy loop failed: RuntimeError: the env broke at its first step."
    )
    monkeypatch.setattr(sys, "argv", ["e2hil-actor"])
    with pytest.raises(SystemExit) as exit_info:
        entry.run_entry(lambda: None)
    assert exit_info.value.code == 1


# 6. One error line, exit code 2, for what a user gets wrong on the e2hil-sim command line.


@pytest.mark.e2e
def test_bad_command_lines_end_with_one_error_line(tmp_path, monkeypatch, capsys):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"env": ')
    a_file = tmp_path / "file"
    a_file.write_text("")
    out = f"--output_dir={tmp_path / 'run'}"
    cases = [
        (["--config_path", str(bad_json)], f"the config file {bad_json} is not valid JSON (Expecting value"),
        (["--config_path", str(tmp_path / "missing.json")], f"the config file {tmp_path / 'missing.json'} does not exist."),
        ([*LAUNCH_FLAGS, f"--output_dir={a_file}/run"], f"cannot write to {a_file}/.run.launch (Not a directory)."),
        (
            [*LAUNCH_FLAGS, out, "--algorithm.influence_lower_quantile=0.95"],
            "algorithm.influence_lower_quantile=0.95 is invalid for type 'e2hil'; allowed values:",
        ),
        ([*LAUNCH_FLAGS, out, "--env.type=gym_manipulator"], "env.type='gym_manipulator' is invalid for e2hil-sim"),
    ]  # fmt: skip
    from lerobot_policy_e2hil import cli
    from lerobot_policy_e2hil.launcher import train
    from test_faults_setup import run_entry_in_process

    # The console script once, in a fresh process; the other cases take the same path in this one
    (args, start), *rest = cases
    assert_one_error_line(sim(*args), 2, start)
    for args, start in rest:
        code, last = run_entry_in_process(monkeypatch, capsys, train.main, *args)
        assert (code, last.startswith(f"error: {start}")) == (2, True), last
    assert not (tmp_path / "run").exists()

    code, last = run_entry_in_process(monkeypatch, capsys, cli.learner_main, "--config_path", str(bad_json))
    assert (code, last.split(" (")[0]) == (2, f"error: the config file {bad_json} is not valid JSON")
