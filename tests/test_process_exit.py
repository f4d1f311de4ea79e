"""The learner and actor processes end with their own exit code even when a native library aborts at exit.

Now and then the learner aborted after its final checkpoint ("terminate called without an active
exception", exit -6) in native teardown, once Python had finalized. These tests stand in for that
library with a C exit handler (``on_exit``) that calls ``abort()`` (put in by a ``sitecustomize`` module), so
every process that reaches native teardown dies with -6, and check that the console scripts and the
sim roles skip it while still doing Python's part of the exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: Makes the C library abort once Python has finalized, as the native teardown seen in the learner did.
ABORT_AT_NATIVE_EXIT = """
import ctypes

_libc = ctypes.CDLL(None)
_libc.on_exit(ctypes.cast(_libc.abort, ctypes.c_void_p), None)
"""


@pytest.fixture()
def env(tmp_path):
    from test_faults_helpers import env_with_sitecustomize

    base = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return env_with_sitecustomize(tmp_path / "site", ABORT_AT_NATIVE_EXIT, base)


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_stand_in_aborts_a_plain_python_exit(env, tmp_path):
    result = run([sys.executable, "-c", "print('done')"], env, tmp_path)
    assert result.stdout == "done\n" and result.returncode == -6


BODY = """
import atexit, sys, threading, time
from pathlib import Path
from lerobot_policy_e2hil.faults.entry import exit_process

def late_write():
    time.sleep(0.5)
    Path("thread.txt").write_text("written")

def main():
    threading.Thread(target=late_write).start()
    atexit.register(lambda: print("atexit handler ran", flush=True))
    {end}

exit_process(main)
"""


@pytest.mark.parametrize(("end", "code"), [("pass", 0), ("sys.exit('bad')", 1)])
def test_exit_process_keeps_the_code_joins_threads_and_runs_atexit_handlers(env, tmp_path, end, code):
    result = run([sys.executable, "-c", BODY.format(end=end)], env, tmp_path)
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stdout == "atexit handler ran\n"
    assert (tmp_path / "thread.txt").read_text() == "written"
    if end == "sys.exit('bad')":
        assert result.stderr.strip().endswith("bad")


def test_an_exception_still_ends_with_its_traceback(env, tmp_path):
    body = "from lerobot_policy_e2hil.faults.entry import exit_process\nexit_process(lambda: 1 / 0)"
    result = run([sys.executable, "-c", body], env, tmp_path)
    assert "ZeroDivisionError" in result.stderr and result.returncode != 0


@pytest.mark.e2e
@pytest.mark.parametrize("script", ["e2hil-learner", "e2hil-actor"])
def test_console_scripts_end_with_their_code(env, tmp_path, script):
    missing = run([str(BIN / script), "--config_path=missing.json"], env, tmp_path)
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.e2e
def test_the_sim_learner_ends_with_its_code(env, tmp_path):
    module = "lerobot_policy_e2hil.launcher.learner"  # the actor's __main__ is the same two lines
    result = run([sys.executable, "-m", module, "--config_path=missing.json"], env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
