"""A mistyped flag, JSON key or choice ends in one ``error:`` line with the nearest valid names and
the allowed values (exit 2, no usage text); ``--help`` is one screen, ``--help-all`` every field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import draccus
import pytest
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from lerobot_policy_e2hil.suggest import describe_parse_error, field_names, nearest
from lerobot_policy_e2hil.train_config import E2HiLTrainConfig
from test_faults_helpers import ROOT, SIM_JSON

BIN = Path(sys.executable).parent


def _json_with(tmp_path: Path, block: str, **values) -> Path:
    raw = json.loads(SIM_JSON.read_text())
    raw[block].update(values)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def _message(
    args: list[str], config_path: Path | str = SIM_JSON, config_class: type = TrainRLServerPipelineConfig
) -> str | None:
    with pytest.raises(Exception) as info:
        draccus.parse(config_class, config_path=str(config_path), args=args, exit_on_error=False)
    return describe_parse_error(info.value, config_class, args, str(config_path))


def test_a_mistyped_flag_names_the_nearest_fields_of_the_chosen_policy():
    assert _message(["--policy.online_stepz=10"]) == (
        "unknown flag --policy.online_stepz (nearest: --policy.online_steps). `--help` lists the flags."
    )
    # A flag given as two tokens, and one with nothing close
    assert _message(["--batch_sise", "3", "--foo.bar=1"]) == (
        "unknown flags --batch_sise (nearest: --batch_size); --foo.bar (no field is close). "
        "`--help` lists the flags."
    )


def test_an_unknown_choice_lists_the_allowed_values_and_the_nearest():
    assert _message(["--algorithm.type=ppo"]) == (
        "algorithm.type='ppo' is not a known choice; allowed values: 'sac', 'e2hil', 'sac_fast'. Set --algorithm.type=<value>."
    )
    message = _message(["--env.type=gym_manipulatr"])
    assert message.startswith("env.type='gym_manipulatr' is not a known choice; nearest: 'gym_manipulator'; ")
    assert "'e2hil_sim'" in message


def test_an_unknown_type_or_key_in_the_json_file_is_named_with_the_allowed_values(tmp_path):
    path = _json_with(tmp_path, "algorithm", type="ppo")
    assert _message([], path) == (
        f"algorithm.type='ppo' in {path} is not a known choice; allowed values: 'sac', 'e2hil', 'sac_fast'. "
        "Fix the file or set --algorithm.type=<value>."
    )
    path = _json_with(tmp_path, "policy", online_stepz=10)
    assert _message([], path) == (
        f"unknown field in {path}: policy.online_stepz (nearest: policy.online_steps); not a field of "
        "policy (GaussianActorConfig). Fix the key in the config file; `--help` lists the flags."
    )


def test_field_names_follow_the_choice_a_config_holds():
    cfg = draccus.parse(TrainRLServerPipelineConfig, config_path=str(SIM_JSON), args=[])
    names = field_names(cfg)
    assert {"policy.type", "policy.online_steps", "algorithm.type", "env.launch.eval_episodes"} <= set(names)
    assert "batch_size" in names and "policy.path" not in names
    assert nearest("policy.online_stepz", names) == ["policy.online_steps"]


def test_a_mistyped_fault_flag_or_key_names_the_nearest_field_of_the_section(tmp_path):
    assert _message(["--faults.grpc_workerz=3"], config_class=E2HiLTrainConfig) == (
        "unknown flag --faults.grpc_workerz (nearest: --faults.grpc_workers). `--help` lists the flags."
    )
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps({**json.loads(SIM_JSON.read_text()), "faults": {"keep_bufers": 1}}))
    assert _message([], path, E2HiLTrainConfig).startswith(
        f"unknown field in {path}: faults.keep_bufers (nearest: faults.keep_buffers)"
    )


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


CASES = {
    "typo": (["--policy.online_stepz=10"], "error: unknown flag --policy.online_stepz (nearest: --policy.online_steps)"),
    "choice": (["--algorithm.type=ppo"], "error: algorithm.type='ppo' is not a known choice; allowed values: 'sac', 'e2hil', 'sac_fast'"),
    "json choice": ([], "error: algorithm.type='ppo' in "),
}  # fmt: skip


#: One case per console script runs in a fresh process, as typed; the others call its entry function here.
IN_A_FRESH_PROCESS = {("e2hil-sim", "typo"), ("e2hil-learner", "choice"), ("e2hil-actor", "json choice")}


def entry_function(program: str):
    """The function a console script of pyproject.toml runs, without its process exit (``inspect.unwrap``)."""
    import importlib
    import inspect
    import tomllib

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][program]
    module, _, name = target.partition(":")
    return inspect.unwrap(getattr(importlib.import_module(module), name))


def run_in_process(program: str, args: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """Exit code and non-empty output lines of ``program``'s entry function called with ``args``."""
    monkeypatch.setattr(sys, "argv", [program, *args])
    with pytest.raises(SystemExit) as exit_info:
        entry_function(program)()
    captured = capsys.readouterr()
    return exit_info.value.code, [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def _check_one_short_error_line(code: int, lines: list[str], start: str) -> None:
    assert code == 2, lines[-20:]
    assert len(lines) < 5 and lines[-1].startswith(start), lines[-20:]
    assert not any(line.startswith("usage:") for line in lines)
    assert (
        "allowed values: 'e2hil', 'sac', 'sac_fast'" in lines[-1]
        or "nearest:" in lines[-1]
        or "'sac', 'e2hil'" in lines[-1]
    )


@pytest.mark.e2e
@pytest.mark.parametrize(("program", "case"), sorted(IN_A_FRESH_PROCESS))
def test_each_mistake_is_one_short_error_line_and_exit_2(tmp_path, program, case):
    args, start = CASES[case]
    config = _json_with(tmp_path, "algorithm", type="ppo") if case == "json choice" else SIM_JSON
    command = [str(BIN / program), "--config_path", str(config), *args, f"--output_dir={tmp_path / 'run'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    _check_one_short_error_line(result.returncode, _lines(result), start)


@pytest.mark.parametrize("program", ["e2hil-sim", "e2hil-learner", "e2hil-actor"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_one_short_error_line_and_exit_2_in_process(
    tmp_path, program, case, monkeypatch, capsys
):
    if (program, case) in IN_A_FRESH_PROCESS:
        pytest.skip("run in a fresh process by test_each_mistake_is_one_short_error_line_and_exit_2")
    args, start = CASES[case]
    config = _json_with(tmp_path, "algorithm", type="ppo") if case == "json choice" else SIM_JSON
    argv = ["--config_path", str(config), *args, f"--output_dir={tmp_path / 'run'}"]
    code, lines = run_in_process(program, argv, monkeypatch, capsys)
    _check_one_short_error_line(code, lines, start)
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("program", ["e2hil-sim", "e2hil-learner", "e2hil-actor"])
def test_help_is_one_screen_that_says_how_to_list_every_field(program):
    result = subprocess.run([str(BIN / program), "--help"], capture_output=True, text=True, timeout=300)
    lines = result.stdout.splitlines()
    assert "Traceback" not in result.stderr and "cannot be loaded" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0 and len(lines) <= 25, len(lines)
    assert lines[0].startswith(f"{program}: ")
    assert any(line.startswith("Exit code 0") for line in lines)
    assert (
        f"{program} --help-all" in result.stdout or f"{program} --config_path ... --help-all" in result.stdout
    )
