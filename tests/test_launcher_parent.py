"""A process started by e2hil-sim gets one SIGTERM when the launcher dies (``launcher.parent``).

Linux's parent-death signal fires once per dying launcher thread, and LeRobot takes a second
SIGTERM as "Force shutdown" (the learner then skipped its final checkpoint). The child here is
started the launcher's way (``launcher.children.die_with_parent`` before exec, the launcher's pid in the
environment) by a stand-in launcher, which is then SIGKILLed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from test_faults_helpers import ROOT, wait_for
from test_launcher_faults import alive

CHILD = textwrap.dedent(
    """
    import ctypes, pathlib, signal, sys, time
    from lerobot_policy_e2hil.launcher.parent import stop_once_with_launcher

    log = pathlib.Path(sys.argv[1])

    def note(line):
        with log.open("a") as f:
            f.write(line + "\\n")

    signal.signal(signal.SIGTERM, lambda signum, frame: note("TERM"))
    watcher = stop_once_with_launcher(poll_s=0.05)
    death_signal = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(death_signal))  # PR_GET_PDEATHSIG
    note(f"ready watcher={watcher is not None} pdeathsig={death_signal.value}")
    while "TERM" not in log.read_text():
        time.sleep(0.05)
    watcher.join()
    note("done")
    """
)
LAUNCHER = textwrap.dedent(
    """
    import os, subprocess, sys, threading, time
    from lerobot_policy_e2hil.launcher.parent import LAUNCHER_PID_ENV
    from lerobot_policy_e2hil.launcher.children import die_with_parent

    # Threads like the launcher's (torch, gRPC): each may hand the child on when it dies
    for _ in range(8):
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    env = {**os.environ, LAUNCHER_PID_ENV: str(os.getpid())}
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=env, preexec_fn=die_with_parent)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_child_gets_one_sigterm_when_the_launcher_is_sigkilled(tmp_path):
    log = tmp_path / "child.log"
    log.write_text("")
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, CHILD, str(log)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    child = int(launcher.stdout.readline())
    try:
        wait_for(lambda: "ready" in log.read_text(), 120, "the child to start")
        assert "ready watcher=True pdeathsig=0" in log.read_text()  # the kernel's signal is dropped
        assert alive(child)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        wait_for(lambda: "done" in log.read_text(), 60, "the child to be told")
        assert log.read_text().splitlines()[1:] == ["TERM", "done"]
    finally:
        for pid in (launcher.pid, child):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.wait()


def test_launcher_pid_is_read_only_when_it_is_a_pid():
    from lerobot_policy_e2hil.launcher.parent import LAUNCHER_PID_ENV, launcher_pid

    assert launcher_pid({LAUNCHER_PID_ENV: "1234"}) == 1234
    for value in ("", "abc", "-5", "1", "0"):
        assert launcher_pid({LAUNCHER_PID_ENV: value}) is None
    assert launcher_pid({}) is None


def test_without_the_launcher_nothing_changes(monkeypatch):
    from lerobot_policy_e2hil.launcher import parent

    monkeypatch.delenv(parent.LAUNCHER_PID_ENV, raising=False)
    assert parent.stop_once_with_launcher() is None
    death_signal = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(death_signal))
    assert death_signal.value == 0


@pytest.mark.slow
def test_launcher_children_start_with_the_parent_death_signal():
    from lerobot_policy_e2hil.launcher.children import die_with_parent

    read = "import ctypes; v = ctypes.c_int(-1); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
    result = subprocess.run(
        [sys.executable, "-c", read], preexec_fn=die_with_parent, capture_output=True, text=True, timeout=60
    )
    assert int(result.stdout) == signal.SIGTERM  # covers the child until it runs launcher.parent
