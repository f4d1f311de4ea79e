"""Every way a launcher ends also ends what it started: ``e2hil-sim`` SIGKILLed leaves no orphan.

SIGKILL cannot be caught, so the launcher cannot stop its learner and actor itself; they are in
their own session (the terminal's signals do not reach them) and ask Linux for SIGTERM when the
launcher dies (``PR_SET_PDEATHSIG``, ``launcher.children.die_with_parent``). The command is the console
script, as a user types it; the kill comes as soon as the learner and the actor exist, the moment
a test's ``subprocess.run(timeout=...)`` or an OOM kill may well hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lerobot_policy_e2hil.launcher.hooks import FINAL_CHECKPOINT
from test_faults_helpers import ROOT, wait_for
from test_launcher_faults import ENV, LAUNCH_FLAGS, alive, process_tree

pytest.importorskip("gym_hil")

# Generous: the children only need to notice SIGTERM and save (nothing was trained yet)
GONE_WITHIN_S = 90


def roles(pids: list[int]) -> dict[str, list[int]]:
    """The launcher's children by role (``learner``, ``actor``), from their command lines."""
    found: dict[str, list[int]] = {"learner": [], "actor": []}
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        for role in found:
            if f"lerobot_policy_e2hil.launcher.{role}" in cmdline:
                found[role].append(pid)
    return found


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkilled_launcher_leaves_no_learner_or_actor(tmp_path):
    command = [
        str(Path(sys.executable).parent / "e2hil-sim"),
        *LAUNCH_FLAGS,
        "--policy.online_steps=100000",
        f"--output_dir={tmp_path / 'run'}",
    ]
    with open(tmp_path / "launcher.out", "w") as out:
        launcher = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV)
    children: dict[str, list[int]] = {}
    try:

        def both_started() -> bool:
            children.update(roles(process_tree(launcher.pid)[1:]))
            return launcher.poll() is not None or all(children.values())

        wait_for(both_started, 600, "the learner and the actor to start")
        assert launcher.poll() is None, (tmp_path / "launcher.out").read_text()
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=60)
        started = [*children["learner"], *children["actor"]]
        deadline = time.monotonic() + GONE_WITHIN_S
        while time.monotonic() < deadline and any(alive(pid) for pid in started):
            time.sleep(0.5)
        left = {role: [p for p in pids if alive(p)] for role, pids in children.items()}
        assert left == {"learner": [], "actor": []}, f"still running {GONE_WITHIN_S} s after the kill: {left}"
        learner_log = (tmp_path / ".run.launch" / "learner.out").read_text(errors="replace")
        # One SIGTERM, however many launcher threads died: the learner ends its entry (launcher.parent)
        if "Shutdown signal" in learner_log:
            assert "Force shutdown" not in learner_log and FINAL_CHECKPOINT in learner_log, learner_log[
                -3000:
            ]
    finally:
        for pid in [launcher.pid, *children.get("learner", []), *children.get("actor", [])]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.wait()
