"""``e2hil-so101-dry-run``: the whole SO101 workflow without hardware, as one command.

The end-to-end test runs the documented command (README_HIL_SERL.md, "Try it without a robot")
with its default sizes in a fresh process and checks what every stage produced. The others check
how it fails: a bad value, a failing stage named in one line, and SIGTERM / SIGKILL of the dry run
ending every process it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.launcher.parent import LAUNCHER_PID_ENV
from lerobot_policy_e2hil.so101 import dry_run

REPO = Path(__file__).resolve().parents[1]
PROGRAM = str(Path(sys.executable).parent / "e2hil-so101-dry-run")
STAGES = ["record", "encoder", "classifier", "train", "eval"]


def _env() -> dict[str, str]:
    return {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"}


def _live_mentioning(text: str) -> dict[int, str]:
    """Pid -> command line of the live processes whose arguments contain ``text`` (zombies excluded)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found[int(proc.name)] = cmdline
    return found


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes whose arguments contain ``text`` (zombies excluded)."""
    return list(_live_mentioning(text).values())


def _pids_mentioning(text: str) -> list[int]:
    return list(_live_mentioning(text))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(text: str, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := _processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.e2e
@pytest.mark.slow
def test_dry_run_records_trains_and_evaluates(so101_dry_run):
    """The documented command runs every stage, the learner checkpoints >= 30 updates, eval reads it.

    The follower is in MuJoCo: the demos' frames are rendered from the scene (two cameras, two
    views), not the synthetic cameras' square, which draws the same frame for both with equal red
    and green, and the scripted teacher moves the leader during the demos
    (``--follower_physics=instant``: :func:`test_killed_while_training_the_learner_stops_once_and_checkpoints`).
    """
    result, out = so101_dry_run  # the documented command, run once per session (conftest.py)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = {stage["name"]: stage for stage in summary["stages"]}
    assert [stage["name"] for stage in summary["stages"]] == STAGES
    for name in STAGES:
        assert f"[dry-run] {name}: ok" in result.stdout
    demos = stages["record"]["produced"]
    assert demos["episodes"] == 2 and demos["frames"] > 0
    assert demos["cameras"] == ["observation.images.front", "observation.images.wrist"]
    assert summary["settings"]["follower_physics"] == "mujoco"
    for command in (stages["record"]["command"], *stages["train"]["command"], stages["eval"]["command"]):
        assert "--env.robot.physics=mujoco" in command
    front, wrist = (demos["image_mean_rgb"][camera] for camera in demos["cameras"])
    assert front != wrist and all(abs(rgb[0] - rgb[1]) > 1e-3 for rgb in (front, wrist)), demos  # rendered
    # The scripted teacher moves the leader (--env.teleop.script=pick_cube)
    assert "--env.teleop.script=pick_cube" in stages["record"]["command"]
    assert demos["moving_frames"] > demos["frames"] // 2, demos
    assert (Path(stages["classifier"]["produced"]["model"]) / "model.safetensors").is_file()
    trained = stages["train"]["produced"]
    assert trained["step"] >= 30 and trained["algorithm"] == "e2hil"
    assert trained["offline_buffer"] == demos["frames"]  # the demos reached the learner's buffer
    assert trained["online_buffer"] > 0  # and the actor's transitions too
    assert (Path(trained["checkpoint"]) / "pretrained_model" / "model.safetensors").is_file()
    evaluated = stages["eval"]["produced"]
    assert evaluated["n_episodes"] == 2 and len(evaluated["steps"]) == 2
    eval_summary = json.loads(Path(evaluated["summary"]).read_text())
    assert Path(eval_summary["policy_path"]).resolve() == (Path(trained["checkpoint"]) / "pretrained_model")
    assert eval_summary["success_source"] == "classifier"
    assert (
        "--env.processor.reward_classifier.pretrained_path="
        + str(out / "classifier/checkpoints/last/pretrained_model")
        in stages["train"]["command"][1]
    )  # the actor's reward comes from the classifier just trained
    assert not _wait_gone(str(out), timeout_s=10)


def test_bad_value_names_the_field(tmp_path, monkeypatch, capsys):
    """An invalid size stops at once with one line naming the field and the allowed values.

    In-process (``main`` with its argv): the program runs as typed in the other tests here.
    """
    from test_cli_errors import run_in_process

    code, lines = run_in_process(
        "e2hil-so101-dry-run", ["--updates=0", f"--output_dir={tmp_path / 'out'}"], monkeypatch, capsys
    )
    assert code == 2, lines
    assert "updates=0 is invalid; allowed values: >= 1" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_non_empty_output_dir_is_refused(tmp_path, monkeypatch, capsys):
    """Earlier results are never overwritten (in-process, as above; the signal handlers are left alone)."""
    from test_cli_errors import run_in_process

    monkeypatch.setattr(dry_run.signal, "signal", lambda *args: None)
    (tmp_path / "old.txt").write_text("x")
    code, lines = run_in_process("e2hil-so101-dry-run", [f"--output_dir={tmp_path}"], monkeypatch, capsys)
    assert code == 2, lines
    assert "output_dir=" in lines[-1] and "not empty" in lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]


@pytest.mark.e2e
def test_failed_stage_is_named_in_one_line(tmp_path):
    """A stage that fails ends the run: exit 1, ``error: dry run stage '<name>' failed: ...``."""
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "HIL-SERL", configs)
    env_config = json.loads((configs / "env_config_so101.json").read_text())
    env_config["mode"] = "teleport"  # the record command rejects it
    (configs / "env_config_so101.json").write_text(json.dumps(env_config))
    out = tmp_path / "out"
    result = subprocess.run(
        [PROGRAM, f"--output_dir={out}", f"--config_dir={configs}"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == dry_run.EXIT_FAILED, result.stderr[-3000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr[-3000:]
    assert error_lines[0].startswith("error: dry run stage 'record' failed: exit ")
    assert "teleport" in error_lines[0] and str(out / "logs" / "record.log") in error_lines[0]
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())  # written on failure too
    assert summary["stages"] == [] and summary["failed"]["stage"] == "record"
    assert "teleport" in summary["failed"]["cause"]


#: Makes every Python process that has it on PYTHONPATH fail to load torchcodec's libraries the way a
#: machine without FFmpeg does (dlopen of libtorchcodec_core<N>.so fails on libavutil), so LeRobot prints
#: torchcodec's loading traceback and falls back to pyav.
NO_FFMPEG_SITECUSTOMIZE = """
import ctypes

_load = ctypes.CDLL.__init__


def _without_ffmpeg(self, name, *args, **kwargs):
    if name and "libtorchcodec" in str(name):
        raise OSError(f"libavutil.so.57: cannot open shared object file: No such file or directory ({name})")
    _load(self, name, *args, **kwargs)


ctypes.CDLL.__init__ = _without_ffmpeg
"""


def _env_without_ffmpeg(tmp_path: Path) -> dict[str, str]:
    """The dry run's environment on a machine where torchcodec cannot load (checked with LeRobot's probe)."""
    from test_faults_helpers import env_with_sitecustomize

    env = env_with_sitecustomize(tmp_path / "no_ffmpeg", NO_FFMPEG_SITECUSTOMIZE, _env())
    probe = "from lerobot.utils.import_utils import get_safe_default_video_backend as g; print(g())"
    check = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert check.stdout.strip() == "pyav" and "Traceback (most recent call last)" in check.stderr
    return env


def _start_and_wait_for_record(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PROGRAM, f"--output_dir={out}"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As a job started in the background by a script (CI): SIGINT inherited as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 120
    while not any("so101.record" in c for c in _processes_mentioning(str(out))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_every_process_started(tmp_path, sig):
    """SIGTERM or Ctrl-C during a stage: the stage's process is ended, the exit is non-zero."""
    out = tmp_path / "out"
    proc = _start_and_wait_for_record(out)
    try:
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == (143 if sig == signal.SIGTERM else 130), stderr[-3000:]
        assert f"error: dry run stopped by {sig.name}" in stderr
        assert not _wait_gone(str(out), timeout_s=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.e2e
def test_killed_dry_run_takes_its_stages_along(tmp_path):
    """Even SIGKILL of the dry run alone (no clean-up possible) ends the stage it was running."""
    out = tmp_path / "out"
    proc = _start_and_wait_for_record(out)
    try:
        proc.kill()
        proc.wait(timeout=10)
        assert not _wait_gone(str(out), timeout_s=30)
    finally:
        for _ in _processes_mentioning(str(out)):
            os.killpg(proc.pid, signal.SIGKILL)
            break


def test_stage_commands_wire_the_outputs_together(tmp_path):
    """Each stage reads what the previous one wrote; learner and actor share one port and config."""
    cfg = dry_run.DryRunConfig(output_dir=str(tmp_path))
    paths = dry_run.Paths(tmp_path)
    record = dry_run.record_argv(cfg, paths)
    classifier = dry_run.classifier_argv(cfg, paths)
    learner = dry_run.learner_argv(cfg, paths, 12345)
    actor = dry_run.actor_argv(cfg, paths, 12345)
    evaluation = dry_run.eval_argv(cfg, paths)
    assert f"--dataset.root={paths.demos}" in record
    assert f"--dataset.root={paths.demos}" in classifier and f"--dataset.root={paths.demos}" in learner
    assert f"--reward_model.model_name={paths.encoder}" in classifier
    for argv in (learner, actor):
        assert "--policy.actor_learner_config.learner_port=12345" in argv
        assert "--save_freq=30" in argv
    assert f"--output_dir={paths.train}" in learner and f"--output_dir={paths.actor}" in actor
    assert f"--env.processor.reward_classifier.pretrained_path={paths.classifier_model}" in actor
    assert f"--policy_path={paths.policy_model}" in evaluation
    assert str(paths.policy_model).startswith(str(paths.train))
    assert '--env.teleop.end_effector_step_sizes={"x":0.01,"y":0.01,"z":0.01}' in actor
    assert "--policy.vision_encoder_name=null" in actor
    assert "--env.teleop.script=pick_cube" in record  # the default follower is in MuJoCo
    instant = dry_run.DryRunConfig(output_dir=str(tmp_path), follower_physics="instant")
    assert not any("script" in arg for arg in dry_run.record_argv(instant, paths))
    local = dry_run.DryRunConfig(output_dir=str(tmp_path), policy_encoder="local")
    for argv in (
        dry_run.actor_argv(local, paths, 1),
        dry_run.learner_argv(local, paths, 1),
        dry_run.eval_argv(local, paths),
    ):
        assert f"--policy.vision_encoder_name={paths.encoder}" in argv


def test_config_rejects_unknown_policy_encoder():
    """A bad choice names the field and the allowed values."""
    with pytest.raises(
        ConfigError, match=r"policy_encoder='hub' is invalid; allowed values: \('local', 'none'\)"
    ):
        dry_run.DryRunConfig(policy_encoder="hub")


def test_stages_know_the_dry_run_as_their_launcher(tmp_path):
    """Every stage gets the dry run's pid, so e2hil-learner / e2hil-actor stop once when it is gone."""
    env = dry_run.child_env(dry_run.Paths(tmp_path))
    assert env[LAUNCHER_PID_ENV] == str(os.getpid())


def test_stages_run_one_openmp_thread_unless_the_user_chose(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert dry_run.child_env(dry_run.Paths(tmp_path))["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert dry_run.child_env(dry_run.Paths(tmp_path))["OMP_NUM_THREADS"] == "4"


# A stand-in dry run: its actor stage is started by a thread that then ends while the dry run lives
# on. Linux sends the parent-death signal when the forking THREAD ends (and again at each dying
# thread when the process is killed); the actor must ignore the first and stop once on SIGKILL.
THREAD_LAUNCHER = """
import sys, threading, time
from pathlib import Path
from lerobot_policy_e2hil.so101 import dry_run

cfg = dry_run.DryRunConfig(output_dir=sys.argv[1], follower_physics="instant")
paths = dry_run.Paths(Path(sys.argv[1]))
procs = dry_run.Processes(dry_run.child_env(paths), paths.logs)
for _ in range(8):  # threads like the dry run's (torch, pyarrow), each a possible hand-over
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()

def start():
    actor = procs.start("actor", dry_run.actor_argv(cfg, paths, dry_run.free_port()))
    print(actor.pid, flush=True)
    while "Establishing connection with Learner" not in procs.log("actor").read_text():
        time.sleep(0.1)

starter = threading.Thread(target=start)
starter.start()
starter.join()
print("starter ended", flush=True)
time.sleep(600)
"""
NOT_READY = "not ready (attempt"  # the actor's retry line while its learner is absent (actor.hooks)
SHUTDOWN = "Shutdown signal 15 received"  # LeRobot's handler logs each signal; a second is "Force shutdown"


@pytest.mark.e2e
def test_actor_stops_once_when_the_dry_run_is_gone_not_when_its_starting_thread_ends(tmp_path):
    """The actor, waiting for its learner, survives the end of the thread that started it, then gets
    ONE SIGTERM when the dry run is SIGKILLed (``launcher.parent``'s watcher, not Linux's per-thread signal)."""
    out = tmp_path / "out"
    launcher = subprocess.Popen(
        [sys.executable, "-c", THREAD_LAUNCHER, str(out)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log = out / "logs" / "actor.log"
    try:
        actor = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == "starter ended"
        # Two more connection attempts after the thread ended: the actor ran on, unsignalled.
        waits_before = log.read_text().count(NOT_READY)
        deadline = time.monotonic() + 120
        while log.read_text().count(NOT_READY) < waits_before + 2:
            assert time.monotonic() < deadline and _alive(actor), log.read_text()[-3000:]
            time.sleep(0.2)
        assert SHUTDOWN not in log.read_text(), log.read_text()[-3000:]
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 60
        while _alive(actor):
            assert time.monotonic() < deadline, "the actor outlived the dry run"
            time.sleep(0.2)
        text = log.read_text()
        assert text.count(SHUTDOWN) == 1 and "Force shutdown" not in text, text[-3000:]
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        for pid in _pids_mentioning(str(out)):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_while_training_the_learner_stops_once_and_checkpoints(tmp_path):
    """SIGKILL of the dry run once the learner updates: learner and actor get one SIGTERM each and
    end, and the learner writes its final checkpoint (a second SIGTERM, LeRobot's "Force shutdown",
    skipped it).

    Run where torchcodec cannot load (as without FFmpeg): its fallback traceback in the stages' logs
    fails no stage (stages are judged by their products) and the learner trains on demos decoded by
    pyav.
    """
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            PROGRAM,
            f"--output_dir={out}",
            "--follower_physics=instant",
            "--episodes=1",
            "--classifier_steps=2",
            "--updates=100000",
        ],
        cwd=REPO,
        env=_env_without_ffmpeg(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    learner_log = out / "logs" / "learner.log"
    try:
        deadline = time.monotonic() + 900
        while not (learner_log.is_file() and "Optimization frequency loop" in learner_log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "no learner update"
            time.sleep(1.0)
        proc.kill()
        proc.wait(timeout=10)
        assert not _wait_gone(str(out), timeout_s=180)
        text = learner_log.read_text()
        assert text.count(SHUTDOWN) == 1 and "Force shutdown" not in text, text[-3000:]
        assert "[LEARNER] final checkpoint: " + str(out / "train" / "checkpoints") in text, text[-3000:]
        assert dry_run.newest_complete_step(out / "train" / "checkpoints")
        assert (out / "logs" / "actor.log").read_text().count(SHUTDOWN) == 1
        assert "Falling back to 'pyav'" in text, text[:3000]
        # --follower_physics=instant: synthetic cameras (one frame for both, red = green), the leader stays put
        demos = dry_run.demos_produced(dry_run.Paths(out).demos)
        front, wrist = (demos["image_mean_rgb"][camera] for camera in demos["cameras"])
        assert front == wrist and abs(front[0] - front[1]) <= 1e-3, demos["image_mean_rgb"]
        assert demos["moving_frames"] <= demos["frames"] // 2, demos
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _pids_mentioning(str(out)):
            os.kill(pid, signal.SIGKILL)
