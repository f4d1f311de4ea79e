"""The SO101 commands end on a bad value with one line naming the field and the allowed values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV_CONFIG = str(ROOT / "HIL-SERL" / "env_config_so101.json")
TRAIN_CONFIG = str(ROOT / "HIL-SERL" / "train_config_e2hil_so101.json")
FIX = ". Fix that value in the config file or with its --<field> flag."

CASES = {
    "eval n_episodes": (
        ["e2hil-so101-eval", "--train_config=t.json", "--policy_path=p", "--n_episodes=0"],
        "error: n_episodes=0 is invalid; allowed values: >= 1",
    ),
    "eval success_source": (
        ["e2hil-so101-eval", "--train_config=t.json", "--policy_path=p", "--success_source=camera"],
        "error: success_source='camera' is invalid; allowed values: ('classifier', 'keys')",
    ),
    "record mode": (
        ["e2hil-so101-record", "--config_path", ENV_CONFIG, "--mode=teach"],
        "error: mode='teach' is invalid; allowed values: ('record', 'replay')",
    ),
    "record replay without episode": (
        ["e2hil-so101-record", "--config_path", ENV_CONFIG, "--mode=replay", "--dataset.replay_episode=null"],
        "error: dataset.replay_episode=None is invalid with mode='replay'; allowed values: an episode index >= 0",
    ),
    # Values inside a choice-type field: LeRobot's parser.wrap prints draccus' nested message on
    # several lines and exits 1; the entry points check the command line before it.
    "record simulated leader script": (
        ["e2hil-so101-record", "--config_path", ENV_CONFIG, "--env.teleop.type=so101_leader_hil_sim"]
        + ["--env.teleop.script=bogus"],
        "error: teleop.script='bogus' is invalid; allowed values: 'none', 'pick_cube'" + FIX,
    ),
    "record nested bool": (
        ["e2hil-so101-record", "--config_path", ENV_CONFIG, "--env.processor.gripper.use_gripper=maybe"],
        "error: `env.processor.gripper.use_gripper`: Couldn't parse 'maybe' into a bool" + FIX,
    ),
    "record unknown flag": (
        ["e2hil-so101-record", "--config_path", ENV_CONFIG, "--num_episodes=3"],
        "error: unknown flag --num_episodes (no field is close). `--help` lists the flags.",
    ),
    "learner influence form": (
        ["e2hil-learner", "--config_path", TRAIN_CONFIG, "--algorithm.influence_form=bogus"],
        "error: algorithm.influence_form='bogus' is invalid for type 'e2hil'; allowed values: "
        "'policy_gradient', 'natural', 'first_order'" + FIX,
    ),
    "actor gripper penalty": (
        ["e2hil-actor", "--config_path", TRAIN_CONFIG, "--env.processor.gripper.gripper_penalty=high"],
        "error: `env.processor.gripper.gripper_penalty`: Couldn't parse 'high' into a float" + FIX,
    ),
}


#: One case per program runs as a fresh process (as typed); the rest call the program's entry here.
IN_A_FRESH_PROCESS = {"eval n_episodes", "record mode", "learner influence form", "actor gripper penalty"}


def _check(code: int, output: str, stderr: str, expected: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and "Couldn't instantiate" not in output, output
    assert "Could not decode" not in output, output
    assert stderr.strip().splitlines()[-1] == expected, output


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IN_A_FRESH_PROCESS))
def test_bad_value_exits_with_one_line(name, tmp_path):
    (program, *args), expected = CASES[name]
    result = subprocess.run(
        [str(BIN / program), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MUJOCO_GL": "egl"},
        timeout=300,
    )
    _check(result.returncode, result.stdout + result.stderr, result.stderr, expected)


@pytest.mark.parametrize("name", sorted(set(CASES) - IN_A_FRESH_PROCESS))
def test_bad_value_exits_with_one_line_in_process(name, tmp_path, monkeypatch, capsys):
    from test_cli_errors import run_in_process

    (program, *args), expected = CASES[name]
    monkeypatch.chdir(tmp_path)
    code, lines = run_in_process(program, args, monkeypatch, capsys)
    _check(code, "\n".join(lines), lines[-1], expected)
