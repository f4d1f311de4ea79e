"""``e2hil-bench``'s draccus command line: budgets from one place, unchanged run fingerprints, docs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_policy_e2hil.bench.cli import COMMANDS, main, parse, runs_of
from lerobot_policy_e2hil.bench.config import BUDGETS, QUICK_BUDGET, SWEEP_BUDGET, Budget, RunConfig

ROOT = Path(__file__).resolve().parents[1]
TWO_POSITIONS = "HIL-SERL/train_gym_hil_env_SIM_two_positions.json"

# Fingerprints (RunConfig.to_dict, sorted JSON) that the argparse CLI produced before the
# draccus one, for the same settings. A run cached by the old code is reused only if they stay.
OLD_FINGERPRINTS = [
    (
        # the two-position benchmark cached in outputs/bench/two_positions/runs:
        # suite --config ..._two_positions.json --variants sac,e2hil --seeds 12 --env-steps 5000
        # --eval-every 500 --eval-episodes 10 --final-eval-episodes 40 --workers 2
        [
            "suite",
            f"--config_path={TWO_POSITIONS}",
            "--variants=sac,e2hil",
            "--seeds=12",
            "--budget.env_steps=5000",
            "--budget.eval_every=500",
            "--budget.eval_episodes=10",
            "--budget.final_eval_episodes=40",
            "--workers=2",
        ],
        {
            "sac_seed0": '{"batch_size": 128, "config_path": "HIL-SERL/train_gym_hil_env_SIM_two_positions.json", "entropy_samples": 32, "env_steps": 5000, "eval_episodes": 10, "eval_every": 500, "final_eval_episodes": 40, "influence_lower_quantile": null, "influence_upper_quantile": null, "learning_starts": null, "log_every": 50, "method": "sac", "num_action_samples": null, "overrides": [], "probe_every": 5, "seed": 0, "threads": 1, "updates_per_env_step": 1.0}',
            "e2hil_seed11": '{"batch_size": 128, "config_path": "HIL-SERL/train_gym_hil_env_SIM_two_positions.json", "entropy_samples": 32, "env_steps": 5000, "eval_episodes": 10, "eval_every": 500, "final_eval_episodes": 40, "influence_lower_quantile": null, "influence_upper_quantile": null, "learning_starts": null, "log_every": 50, "method": "e2hil", "num_action_samples": null, "overrides": [], "probe_every": 5, "seed": 11, "threads": 1, "updates_per_env_step": 1.0}',
        },
    ),
    (
        # suite --quick --variants sac,e2hil,e2hil_first_order --seeds 2 --first-seed 1
        # --override=--env.teacher.demo_episodes=3
        [
            "suite",
            "--quick=true",
            "--variants=sac,e2hil,e2hil_first_order",
            "--seeds=2",
            "--first_seed=1",
            "--env.teacher.demo_episodes=3",
        ],
        {
            "e2hil_first_order_seed2": '{"batch_size": 32, "config_path": "HIL-SERL/train_gym_hil_env_SIM.json", "entropy_samples": 32, "env_steps": 120, "eval_episodes": 1, "eval_every": 60, "final_eval_episodes": 2, "influence_form": "first_order", "influence_lower_quantile": null, "influence_upper_quantile": null, "learning_starts": 40, "log_every": 50, "method": "e2hil", "num_action_samples": null, "overrides": ["--env.max_episode_steps=30", "--env.teacher.demo_episodes=2", "--env.teacher.demo_episodes=3"], "probe_every": 2, "seed": 2, "threads": 1, "updates_per_env_step": 0.25}',
        },
    ),
    (
        # sweep --seeds 2 --learning-starts 300 --batch-size 64 --updates-per-env-step 0.75 --probe-every 0
        [
            "sweep",
            "--seeds=2",
            "--budget.learning_starts=300",
            "--budget.batch_size=64",
            "--budget.updates_per_env_step=0.75",
            "--budget.probe_every=0",
        ],
        {
            "e2hil_K16_seed1": '{"batch_size": 64, "config_path": "HIL-SERL/train_gym_hil_env_SIM.json", "entropy_samples": 32, "env_steps": 6000, "eval_episodes": 5, "eval_every": 600, "final_eval_episodes": 20, "influence_lower_quantile": null, "influence_upper_quantile": null, "learning_starts": 300, "log_every": 50, "method": "e2hil", "num_action_samples": 16, "overrides": [], "probe_every": 0, "seed": 1, "threads": 1, "updates_per_env_step": 0.75}',
        },
    ),
    (
        # run --method e2hil --seed 4 --num-action-samples 16 --lower-quantile 0.1 --upper-quantile 0.95 --env-steps 300
        [
            "run",
            "--method=e2hil",
            "--seed=4",
            "--num_action_samples=16",
            "--influence_lower_quantile=0.1",
            "--influence_upper_quantile=0.95",
            "--budget.env_steps=300",
        ],
        {
            "e2hil_K16_lo0.1_up0.95_seed4": '{"batch_size": 128, "config_path": "HIL-SERL/train_gym_hil_env_SIM.json", "entropy_samples": 32, "env_steps": 300, "eval_episodes": 10, "eval_every": 2500, "final_eval_episodes": 30, "influence_lower_quantile": 0.1, "influence_upper_quantile": 0.95, "learning_starts": null, "log_every": 50, "method": "e2hil", "num_action_samples": 16, "overrides": [], "probe_every": 5, "seed": 4, "threads": 1, "updates_per_env_step": 1.0}',
        },
    ),
]


@pytest.mark.parametrize(
    ("argv", "expected"), OLD_FINGERPRINTS, ids=["two_positions", "quick", "sweep", "run"]
)
def test_runs_built_through_the_cli_keep_the_fingerprints_of_the_old_cli(argv, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = {run.name: json.dumps(run.to_dict(), sort_keys=True) for run in runs_of(parse(argv))}
    for name, fingerprint in expected.items():
        assert runs[name] == fingerprint, name


def test_the_two_position_benchmark_has_24_runs_in_the_old_order(monkeypatch):
    monkeypatch.chdir(ROOT)
    names = [run.name for run in runs_of(parse(OLD_FINGERPRINTS[0][0]))]
    assert names[:4] == ["sac_seed0", "e2hil_seed0", "sac_seed1", "e2hil_seed1"] and len(names) == 24


def test_budget_flags_replace_only_their_fields_of_the_commands_budget():
    quick = parse(["sweep", "--quick=true", "--budget.env_steps=50", "--env.reward=touch"]).budget
    assert quick == dataclasses.replace(
        QUICK_BUDGET, env_steps=50, overrides=(*QUICK_BUDGET.overrides, "--env.reward=touch")
    )
    assert parse(["sweep", "--budget.eval_every", "0"]).budget == dataclasses.replace(
        SWEEP_BUDGET, eval_every=0
    )
    replaced = parse(["suite", "--quick=true", "--budget.overrides=[--env.reward=touch]"]).budget
    assert replaced.overrides == ("--env.reward=touch",)
    for name, budget in BUDGETS.items():
        assert parse([name]).budget == budget


def test_run_config_takes_its_budget_fields_from_budget():
    budget_fields = [f.name for f in dataclasses.fields(Budget)]
    run_fields = [f.name for f in dataclasses.fields(RunConfig)]
    assert run_fields[: len(budget_fields)] == budget_fields
    assert issubclass(RunConfig, Budget)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["suite", "--seeds=0"], "error: seeds=0 is invalid; allowed values: >= 1"),
        (["sweep", "--workers=0"], "error: workers=0 is invalid; allowed values: >= 1"),
        (["suite", "--budget.batch_size=0"], "error: budget.batch_size=0 is invalid; allowed values: >= 1"),
        (
            ["suite", "--budget.updates_per_env_step=0"],
            "error: budget.updates_per_env_step=0.0 is invalid; allowed values: > 0",
        ),
        (["run", "--method=td3"], "error: method='td3' is invalid; allowed values: 'sac', 'e2hil'"),
        (
            ["suite", "--variants=e2hil,ppo"],
            "error: variants='e2hil,ppo' is invalid: unknown 'ppo'; allowed values: sac, e2hil, e2hil_first_order, random_mask",
        ),
        (["bench"], "error: command='bench' is invalid; allowed values: run, suite, sweep, influence-check"),
        (
            ["suite", "--config_path=missing.json"],
            "error: config_path='missing.json' is invalid; allowed values: an existing JSON file "
            "(relative: to the cwd or the source checkout)",
        ),
        (["suite", "--nope=1"], "error: unrecognized arguments: --nope=1. See e2hil-bench suite --help."),
    ],
)
def test_bad_values_print_one_line_naming_the_flag_and_exit_2(argv, line, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_of_each_command_lists_every_budget_flag_with_its_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(Budget):
        assert f"--budget.{f.name}" in text, f.name
    assert f"Env steps of training per run (default: {BUDGETS[command].env_steps})" in text
    assert "--config_path str training JSON every run starts from" in text


@pytest.mark.slow
def test_help_in_a_fresh_process_exits_0_without_a_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "lerobot_policy_e2hil.bench.cli", "suite", "--quick=true", "--help"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert f"(default: {QUICK_BUDGET.env_steps})" in done.stdout


# --- the commands the docs show ----------------------------------------------------------------

DOCS = ("README.md", "docs/benchmarks.md", "docs/sim.md", "Makefile")
PLACEHOLDERS = {"<method>": "e2hil", "$(ARGS)": ""}


def documented_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of each ``e2hil-bench <command> ...`` in the docs (continuations joined)."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text().replace("\\\n", " ")
        for match in re.finditer(r"e2hil-bench ((?:run|suite|sweep|influence-check)\b[^`#|\n]*)", text):
            line = match.group(1)
            for placeholder, value in PLACEHOLDERS.items():
                line = line.replace(placeholder, value)
            found.append((doc, shlex.split(line)))
    return found


def test_every_documented_command_parses(monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = documented_commands()
    assert len(commands) >= 10, commands
    for where, argv in commands:
        try:
            inv = parse(argv)
        except Exception as err:  # noqa: BLE001  (the message names the command)
            raise AssertionError(f"{where}: e2hil-bench {' '.join(argv)}: {err}") from err
        if inv.name != "influence-check":
            assert runs_of(inv), argv


def test_a_report_of_runs_not_yet_trained_is_one_line_naming_report_only(tmp_path, capsys):
    argv = ["suite", "--quick=true", f"--runs_dir={tmp_path / 'runs'}", f"--report_dir={tmp_path / 'report'}"]
    assert main([*argv, "--report_only=true"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: report_only=true is invalid: run sac_seed0 has no result in ")
    assert "allowed values: report_only=false" in line
