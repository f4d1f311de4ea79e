"""The console scripts run LeRobot's learner/actor CLIs with the E2HiL plugin registered."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def help_text(*command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["e2hil-learner", "e2hil-actor"])
def test_entry_points_offer_e2hil(script):
    assert "--algorithm.type {sac,e2hil,sac_fast}" in help_text(str(BIN / script), "--help-all")


@pytest.mark.slow
def test_lerobot_learner_alone_does_not_know_e2hil():
    # Why the entry points exist: LeRobot's RL scripts load no plugins.
    text = help_text(sys.executable, "-m", "lerobot.rl.learner", "--help")
    assert "--algorithm.type {sac}" in text
